"""libsrtp (through pylibsrtp) as an independent SRTP peer for engine/tests/srtp_libsrtp.rs.

Reads lines "<op> <key-hex> <packet-hex>" on stdin and answers each with the result's hex,
or "ERR <reason>". Ops: protect, unprotect, protect_rtcp, unprotect_rtcp. One libsrtp
session per (op direction, key), kept across lines so that rollover and SRTCP indexes
advance as in a real stream.
"""
import sys

from pylibsrtp import Policy, Session

sessions = {}


def session(inbound, key):
    k = (inbound, key)
    if k not in sessions:
        kind = Policy.SSRC_ANY_INBOUND if inbound else Policy.SSRC_ANY_OUTBOUND
        policy = Policy(key=bytes.fromhex(key), ssrc_type=kind,
                        srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
        sessions[k] = Session(policy=policy)
    return sessions[k]


for line in sys.stdin:
    op, key, packet = line.split()
    data = bytes.fromhex(packet)
    try:
        s = session(op.startswith("unprotect"), key)
        out = getattr(s, op)(data)
        print(out.hex(), flush=True)
    except Exception as e:  # libsrtp's refusal is an answer, not a crash
        print("ERR", type(e).__name__, flush=True)
