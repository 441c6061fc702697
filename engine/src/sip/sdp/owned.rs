//! Detaching a parsed SDP from the body it borrows, for the few places that keep it past
//! the datagram (an inbound call's offer waits for the core to answer it).

use std::borrow::Cow;

use super::{
    Attribute, Connection, Fmtp, MediaDescription, Origin, Rtcp, RtpMap, SessionDescription,
};

fn own(s: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(s.into_owned())
}

fn each<T, U>(list: Vec<T>, detach: impl FnMut(T) -> U) -> Vec<U> {
    list.into_iter().map(detach).collect()
}

impl SessionDescription<'_> {
    /// The same description owning its text.
    pub fn into_owned(self) -> SessionDescription<'static> {
        SessionDescription {
            origin: self.origin.map(Origin::into_owned),
            session_name: own(self.session_name),
            connections: each(self.connections, Connection::into_owned),
            direction: self.direction,
            attributes: each(self.attributes, Attribute::into_owned),
            media: each(self.media, MediaDescription::into_owned),
        }
    }
}

impl Origin<'_> {
    fn into_owned(self) -> Origin<'static> {
        Origin {
            username: own(self.username),
            session_id: own(self.session_id),
            session_version: own(self.session_version),
            net_type: own(self.net_type),
            addr_type: own(self.addr_type),
            address: own(self.address),
        }
    }
}

impl Connection<'_> {
    fn into_owned(self) -> Connection<'static> {
        Connection {
            net_type: own(self.net_type),
            addr_type: own(self.addr_type),
            address: own(self.address),
            ip: self.ip,
        }
    }
}

impl Attribute<'_> {
    fn into_owned(self) -> Attribute<'static> {
        Attribute {
            name: own(self.name),
            value: self.value.map(own),
        }
    }
}

impl MediaDescription<'_> {
    fn into_owned(self) -> MediaDescription<'static> {
        MediaDescription {
            media: own(self.media),
            port: self.port,
            port_count: self.port_count,
            protocol: own(self.protocol),
            formats: each(self.formats, own),
            connections: each(self.connections, Connection::into_owned),
            rtpmaps: each(self.rtpmaps, |m| RtpMap {
                encoding: own(m.encoding),
                ..m
            }),
            fmtps: each(self.fmtps, |f| Fmtp {
                params: own(f.params),
                ..f
            }),
            ptime: self.ptime,
            maxptime: self.maxptime,
            rtcp: self.rtcp.map(|r| Rtcp {
                port: r.port,
                connection: r.connection.map(Connection::into_owned),
            }),
            rtcp_mux: self.rtcp_mux,
            direction: self.direction,
            attributes: each(self.attributes, Attribute::into_owned),
        }
    }
}
