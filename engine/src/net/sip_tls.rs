//! SIP over TLS (RFC 3261 §26.2) for the driver: the rustls configurations made once from
//! the `[sip]` settings, and the names carriers' certificates are checked against.
//!
//! A trunk with `transport = "tls"` is reached on a TLS connection whose certificate must
//! name the trunk's host (verification on by default: SDES keys travel in these messages,
//! so a connection to the wrong peer gives away the call's media); the dialer's own
//! listener (`[sip] tls_listen`) presents the configured certificate to carriers that
//! connect to it. Connections are framed and bounded exactly like TCP
//! ([`super::sip_tcp`]), the handshake included in the header timeout.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// TLS settings of the `[sip]` section, as files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// Our certificate chain (PEM), presented by the listener and to carriers that ask for
    /// a client certificate.
    pub cert: Option<PathBuf>,
    /// The key of that certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// CA certificates carriers' certificates are checked against (PEM); the system's
    /// roots when absent.
    pub ca: Option<PathBuf>,
    /// Check that the carrier's certificate names the trunk's host (on by default; off only
    /// for a lab carrier with a self-signed certificate).
    pub verify: bool,
}

/// The TLS side of the driver: how to connect, how to accept, and whom we expect where.
pub struct TlsSetup {
    pub(super) connector: TlsConnector,
    pub(super) acceptor: Option<TlsAcceptor>,
    /// The name each trunk's resolved proxy address must prove; an address not here is
    /// checked as an IP address (its certificate needs an IP SAN).
    names: RwLock<HashMap<SocketAddr, ServerName<'static>>>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("listener", &self.acceptor.is_some())
            .field("names", &self.names)
            .finish()
    }
}

/// Why the TLS settings cannot be used (reported by `check-config` and at start).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: io::Error,
    },
    /// A file holds no certificate or key in PEM.
    #[error("{0}: no PEM certificate or key in it")]
    Empty(PathBuf),
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A listener needs both a certificate and a key.
    #[error("[sip] tls_listen needs tls_cert and tls_key")]
    NoCertificate,
    /// A trunk's host is not a valid TLS server name.
    #[error("{0:?} is not a host name a certificate can name")]
    BadName(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |e: rustls::pki_types::pem::Error| TlsError::Read {
        path: path.to_path_buf(),
        source: io::Error::other(e.to_string()),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(TlsError::Empty(path.to_path_buf()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty(path.to_path_buf()),
        e => TlsError::Read {
            path: path.to_path_buf(),
            source: io::Error::other(e.to_string()),
        },
    })
}

fn roots(files: &TlsFiles) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match &files.ca {
        Some(ca) => {
            for c in read_certs(ca)? {
                store.add(c)?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "system CA certificates: one source unreadable");
            }
            let (added, ignored) = store.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "system CA certificates loaded");
        }
    }
    Ok(store)
}

impl TlsSetup {
    /// Builds the client side, and the listener's side when `listen` is set.
    pub fn new(files: &TlsFiles, listen: bool) -> Result<TlsSetup, TlsError> {
        let ours = match (&files.cert, &files.key) {
            (Some(c), Some(k)) => Some((read_certs(c)?, read_key(k)?)),
            _ if listen => return Err(TlsError::NoCertificate),
            _ => None,
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = if files.verify {
            builder.with_root_certificates(roots(files)?)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
        };
        let client = match &ours {
            Some((chain, key)) => builder.with_client_auth_cert(chain.clone(), key.clone_key())?,
            None => builder.with_no_client_auth(),
        };
        let acceptor = match ours {
            Some((chain, key)) if listen => {
                let server = ServerConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()?
                    .with_no_client_auth()
                    .with_single_cert(chain, key)?;
                Some(TlsAcceptor::from(Arc::new(server)))
            }
            _ => None,
        };
        Ok(TlsSetup {
            connector: TlsConnector::from(Arc::new(client)),
            acceptor,
            names: RwLock::default(),
        })
    }

    /// Records the name the certificate at `addr` must carry (a trunk's host).
    pub fn expect_name(&self, addr: SocketAddr, host: &str) -> Result<(), TlsError> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| TlsError::BadName(host.to_string()))?;
        self.names
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr, name);
        Ok(())
    }

    /// The name a connection to `dest` verifies.
    pub(super) fn name_for(&self, dest: SocketAddr) -> ServerName<'static> {
        self.names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&dest)
            .cloned()
            .unwrap_or_else(|| ServerName::IpAddress(dest.ip().into()))
    }
}

/// `tls_verify = false`: any certificate is taken (signatures on the handshake are still
/// checked). For lab carriers only; `check-config` warns about it.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
