//! Library side of the `dialer` binary: the HTTP control API (`dialer serve`), kept in a
//! library so that the API tests can start a server in process on a free port.

pub mod serve;
pub mod web;
