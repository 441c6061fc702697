use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn rfc_master() -> MasterKey {
    let k = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
    let s = hex("0EC675AD498AFEEBB6960B3AABE6");
    MasterKey::new(k.try_into().unwrap(), s.try_into().unwrap())
}

/// An RTP packet: 12-byte header, `payload_len` bytes of payload, room for the tag.
fn rtp(seq: u16, payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 8];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0xcafe_f00du32.to_be_bytes());
    p.extend((0..payload_len).map(|i| (i * 7 + usize::from(seq)) as u8));
    p
}

fn protect(tx: &mut SrtpSender, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + TAG_LEN, 0);
    let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn key_derivation_matches_rfc3711_b3() {
    let m = rfc_master();
    let mut key = [0u8; 16];
    let mut salt = [0u8; 14];
    let mut auth = [0u8; 20];
    m.derive(0, &mut key);
    m.derive(2, &mut salt);
    m.derive(1, &mut auth);
    assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    assert_eq!(salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    assert_eq!(auth[..16].to_vec(), hex("CEBE321F6FF7716B6FD4AB49AF256A15"));
}

#[test]
fn keystream_matches_rfc3711_b2() {
    let keys = SessionKeys {
        cipher: Aes128::new_from_slice(&hex("2B7E151628AED2A6ABF7158809CF4F3C")).unwrap(),
        salt: hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap(),
        auth: <Hmac<Sha1> as Mac>::new_from_slice(b"k").unwrap(),
    };
    let mut zeros = [0u8; 16];
    keys.apply_keystream(0, 0, &mut zeros);
    assert_eq!(zeros.to_vec(), hex("E03EAD0935C95E80E166B16DD92B4EB4"));
}

#[test]
fn inline_key_round_trips_and_refuses_wrong_lengths() {
    let m = rfc_master();
    let s = m.to_inline();
    assert_eq!(s.len(), 40);
    assert_eq!(MasterKey::from_inline(&s), Some(m));
    assert_eq!(MasterKey::from_inline("AAAA"), None);
    assert_eq!(MasterKey::from_inline("not base64 at all!"), None);
    assert!(!format!("{:?}", rfc_master()).contains("E1F9"));
}

#[test]
fn rtp_round_trip_hides_the_payload_and_keeps_the_header() {
    let mut tx = SrtpSender::new(&rfc_master());
    let mut rx = SrtpReceiver::new(&rfc_master());
    for seq in [1000u16, 1001, 1002] {
        let plain = rtp(seq, 160);
        let mut wire = protect(&mut tx, &plain);
        assert_eq!(wire.len(), plain.len() + TAG_LEN);
        assert_eq!(wire[..12], plain[..12]);
        assert_ne!(wire[12..172], plain[12..]);
        let n = rx.unprotect_rtp(&mut wire).unwrap();
        assert_eq!(&wire[..n], &plain[..]);
    }
}

#[test]
fn tampered_or_foreign_packets_are_refused_untouched() {
    let mut tx = SrtpSender::new(&rfc_master());
    let mut rx = SrtpReceiver::new(&rfc_master());
    let wire = protect(&mut tx, &rtp(7, 160));
    for i in [0usize, 5, 12, 100, wire.len() - 1] {
        let mut bad = wire.clone();
        bad[i] ^= 0x01;
        let before = bad.clone();
        assert_eq!(rx.unprotect_rtp(&mut bad), Err(SrtpError::Auth), "byte {i}");
        assert_eq!(bad, before);
    }
    let other = MasterKey::new([9; 16], [9; 14]);
    assert_eq!(
        SrtpReceiver::new(&other).unprotect_rtp(&mut wire.clone()),
        Err(SrtpError::Auth)
    );
    assert!(rx.unprotect_rtp(&mut wire.clone()).is_ok());
}

#[test]
fn replays_and_packets_older_than_the_window_are_refused() {
    let mut tx = SrtpSender::new(&rfc_master());
    let mut rx = SrtpReceiver::new(&rfc_master());
    let packets: Vec<Vec<u8>> = (0..100u16).map(|s| protect(&mut tx, &rtp(s, 20))).collect();
    assert!(rx.unprotect_rtp(&mut packets[10].clone()).is_ok());
    assert_eq!(
        rx.unprotect_rtp(&mut packets[10].clone()),
        Err(SrtpError::Replay)
    );
    assert!(rx.unprotect_rtp(&mut packets[99].clone()).is_ok());
    // 99 - 10 > 64: out of the window even though never seen.
    assert_eq!(
        rx.unprotect_rtp(&mut packets[20].clone()),
        Err(SrtpError::Replay)
    );
    // Late but inside the window: accepted once.
    assert!(rx.unprotect_rtp(&mut packets[60].clone()).is_ok());
    assert_eq!(
        rx.unprotect_rtp(&mut packets[60].clone()),
        Err(SrtpError::Replay)
    );
}

#[test]
fn rollover_counter_follows_the_wrap_with_reordering() {
    let mut tx = SrtpSender::new(&rfc_master());
    let mut rx = SrtpReceiver::new(&rfc_master());
    let seqs: Vec<u16> = (65500u16..=65535).chain(0..40).collect();
    let wire: Vec<Vec<u8>> = seqs
        .iter()
        .map(|&s| protect(&mut tx, &rtp(s, 40)))
        .collect();
    // Deliver in pairs swapped: reordering right across the wrap.
    let mut order: Vec<usize> = (0..wire.len()).collect();
    for pair in order.chunks_mut(2) {
        pair.reverse();
    }
    for i in order {
        let mut w = wire[i].clone();
        let n = rx
            .unprotect_rtp(&mut w)
            .unwrap_or_else(|e| panic!("seq {}: {e}", seqs[i]));
        assert_eq!(&w[..n], &rtp(seqs[i], 40)[..]);
    }
}

#[test]
fn headers_with_csrcs_and_extensions_stay_in_clear() {
    let mut plain = vec![0x92, 0]; // X bit, 2 CSRCs
    plain.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    plain.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 3]); // CSRCs
    plain.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // one-word extension
    plain.extend_from_slice(&[0x55; 30]);
    let mut tx = SrtpSender::new(&rfc_master());
    let mut w = protect(&mut tx, &plain);
    assert_eq!(w[..28], plain[..28]);
    assert_ne!(w[28..58], plain[28..]);
    let n = SrtpReceiver::new(&rfc_master())
        .unprotect_rtp(&mut w)
        .unwrap();
    assert_eq!(&w[..n], &plain[..]);
}

#[test]
fn rtcp_round_trip_replay_and_tamper() {
    let mut tx = SrtpSender::new(&rfc_master());
    let mut rx = SrtpReceiver::new(&rfc_master());
    // A receiver report with one block (32 bytes).
    let mut plain = vec![0x81, 201, 0, 7, 0xca, 0xfe, 0xf0, 0x0d];
    plain.extend((0..24).map(|i| i as u8));
    let mut w = plain.clone();
    w.resize(plain.len() + SRTCP_TRAILER_LEN, 0);
    let n = tx.protect_rtcp(&mut w, plain.len()).unwrap();
    assert_eq!(n, plain.len() + SRTCP_TRAILER_LEN);
    assert_eq!(w[..8], plain[..8]);
    assert_eq!(w[plain.len()], 0x80, "E flag set, index 0");
    let mut bad = w.clone();
    bad[9] ^= 1;
    assert_eq!(rx.unprotect_rtcp(&mut bad), Err(SrtpError::Auth));
    let mut good = w.clone();
    let m = rx.unprotect_rtcp(&mut good).unwrap();
    assert_eq!(&good[..m], &plain[..]);
    assert_eq!(rx.unprotect_rtcp(&mut w.clone()), Err(SrtpError::Replay));
}

#[test]
fn short_or_roomless_buffers_are_errors_not_panics() {
    let mut tx = SrtpSender::new(&rfc_master());
    let mut rx = SrtpReceiver::new(&rfc_master());
    let mut tiny = [0x80u8; 11];
    assert_eq!(tx.protect_rtp(&mut tiny, 11), Err(SrtpError::Short));
    let mut no_room = rtp(1, 10);
    let len = no_room.len();
    assert_eq!(tx.protect_rtp(&mut no_room, len), Err(SrtpError::NoRoom));
    assert_eq!(tx.protect_rtcp(&mut [0u8; 7], 7), Err(SrtpError::Short));
    for len in 0..40 {
        let mut junk: Vec<u8> = (0..len).map(|i| (i * 31) as u8 | 0x80).collect();
        assert!(rx.unprotect_rtp(&mut junk.clone()).is_err());
        assert!(rx.unprotect_rtcp(&mut junk).is_err());
    }
    // A header that claims 15 CSRCs and an extension past the end.
    let mut lying = vec![0x9f; 30];
    assert_eq!(rx.unprotect_rtp(&mut lying), Err(SrtpError::Short));
}
