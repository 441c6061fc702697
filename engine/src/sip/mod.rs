//! Sans-IO SIP: message codec, URIs, SDP, digest authentication, transactions, dialogs.
