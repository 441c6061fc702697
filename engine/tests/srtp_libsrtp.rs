//! Our SRTP against libsrtp, the implementation most SIP peers (Asterisk, FreeSWITCH,
//! baresip, Kamailio's rtpengine) link: packets we protect must unprotect there to the same
//! RTP, and packets libsrtp protects must unprotect here, across a sequence-number wrap and
//! for SRTCP. libsrtp runs through pylibsrtp in the venv `scripts/setup` makes
//! (`/opt/pylibsrtp`, or `SRTP_ORACLE_PYTHON`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use engine::media::srtp::{MasterKey, SrtpReceiver, SrtpSender, SRTCP_TRAILER_LEN, TAG_LEN};

struct Oracle {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    fn start() -> Oracle {
        let python = std::env::var("SRTP_ORACLE_PYTHON")
            .unwrap_or_else(|_| "/opt/pylibsrtp/bin/python".to_string());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/srtp_oracle/libsrtp.py");
        let mut child = Command::new(&python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{python}: {e} (run scripts/setup: it installs pylibsrtp)"));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Oracle {
            child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, op: &str, key: &[u8; 30], packet: &[u8]) -> Option<Vec<u8>> {
        writeln!(self.stdin, "{op} {} {}", hex(key), hex(packet)).unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let line = line.trim();
        (!line.starts_with("ERR")).then(|| unhex(line))
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn key_bytes(seed: u8) -> ([u8; 30], MasterKey) {
    let raw: [u8; 30] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(seed));
    let key = MasterKey::new(raw[..16].try_into().unwrap(), raw[16..].try_into().unwrap());
    (raw, key)
}

fn rtp(seq: u16, ssrc: u32, len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq).wrapping_mul(160)).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..len).map(|i| (i as u16 ^ seq) as u8));
    p
}

/// 40 packets from seq 65520: across the wrap, so the rollover counter must agree.
fn seqs() -> impl Iterator<Item = u16> {
    (0..40u16).map(|i| 65520u16.wrapping_add(i))
}

#[test]
fn libsrtp_unprotects_what_we_protect() {
    let mut oracle = Oracle::start();
    let (raw, key) = key_bytes(3);
    let mut tx = SrtpSender::new(&key);
    for seq in seqs() {
        let plain = rtp(seq, 0x1234_5678, 160);
        let mut buf = plain.clone();
        buf.resize(plain.len() + TAG_LEN, 0);
        let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
        let back = oracle.ask("unprotect", &raw, &buf[..n]);
        assert_eq!(back.as_deref(), Some(&plain[..]), "seq {seq}");
    }
    for i in 0..5u8 {
        let mut plain = vec![0x80, 200, 0, 6, 0x12, 0x34, 0x56, 0x78];
        plain.extend((0..20).map(|b| b ^ i));
        let mut buf = plain.clone();
        buf.resize(plain.len() + SRTCP_TRAILER_LEN, 0);
        let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
        let back = oracle.ask("unprotect_rtcp", &raw, &buf[..n]);
        assert_eq!(back.as_deref(), Some(&plain[..]), "SRTCP {i}");
    }
}

#[test]
fn we_unprotect_what_libsrtp_protects_and_refuse_its_replays() {
    let mut oracle = Oracle::start();
    let (raw, key) = key_bytes(11);
    let mut rx = SrtpReceiver::new(&key);
    let mut first = None;
    for seq in seqs() {
        let plain = rtp(seq, 0x0bad_cafe, 80);
        let mut wire = oracle
            .ask("protect", &raw, &plain)
            .expect("libsrtp protects");
        first.get_or_insert_with(|| wire.clone());
        let n = rx
            .unprotect_rtp(&mut wire)
            .unwrap_or_else(|e| panic!("seq {seq}: {e}"));
        assert_eq!(&wire[..n], &plain[..], "seq {seq}");
    }
    assert!(
        rx.unprotect_rtp(&mut first.unwrap()).is_err(),
        "a replay is refused"
    );
    for i in 0..5u8 {
        let mut plain = vec![0x81, 201, 0, 7, 0x0b, 0xad, 0xca, 0xfe];
        plain.extend((0..24).map(|b| b ^ i));
        let mut wire = oracle
            .ask("protect_rtcp", &raw, &plain)
            .expect("libsrtp protects RTCP");
        let n = rx
            .unprotect_rtcp(&mut wire)
            .unwrap_or_else(|e| panic!("SRTCP {i}: {e}"));
        assert_eq!(&wire[..n], &plain[..]);
    }
}
