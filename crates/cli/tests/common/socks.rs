//! A minimal SOCKS5 proxy (RFC 1928, no authentication, CONNECT only) that
//! records every CONNECT it receives and resolves names itself through a
//! test map — so a test can check that names (`.onion` included) reached the
//! proxy unresolved, i.e. DNS never happened on the client side.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One CONNECT as the proxy saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// 1 = IPv4, 3 = domain name, 4 = IPv6.
    pub atyp: u8,
    pub host: String,
    pub port: u16,
}

pub struct Socks {
    pub addr: SocketAddr,
    pub connects: Arc<Mutex<Vec<Connect>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Socks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Socks {
    /// A proxy on 127.0.0.1 that maps names to addresses with `names`
    /// (unknown names are refused).
    pub async fn start(names: HashMap<String, SocketAddr>) -> Socks {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind socks");
        let addr = l.local_addr().expect("addr");
        let connects = Arc::new(Mutex::new(Vec::new()));
        let log = connects.clone();
        let names = Arc::new(names);
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = l.accept().await else {
                    break;
                };
                let log = log.clone();
                let names = names.clone();
                tokio::spawn(async move {
                    let _ = handle(sock, log, names).await;
                });
            }
        });
        Socks {
            addr,
            connects,
            task,
        }
    }

    pub fn connects(&self) -> Vec<Connect> {
        self.connects.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

async fn handle(
    mut c: TcpStream,
    log: Arc<Mutex<Vec<Connect>>>,
    names: Arc<HashMap<String, SocketAddr>>,
) -> std::io::Result<()> {
    let mut hdr = [0u8; 2];
    c.read_exact(&mut hdr).await?;
    let mut methods = vec![0u8; hdr[1] as usize];
    c.read_exact(&mut methods).await?;
    c.write_all(&[5, 0]).await?;
    let mut req = [0u8; 4];
    c.read_exact(&mut req).await?;
    let atyp = req[3];
    let host = match atyp {
        1 => {
            let mut a = [0u8; 4];
            c.read_exact(&mut a).await?;
            std::net::Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut n = [0u8; 1];
            c.read_exact(&mut n).await?;
            let mut name = vec![0u8; n[0] as usize];
            c.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).to_string()
        }
        4 => {
            let mut a = [0u8; 16];
            c.read_exact(&mut a).await?;
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => return Ok(()),
    };
    let mut p = [0u8; 2];
    c.read_exact(&mut p).await?;
    let port = u16::from_be_bytes(p);
    if let Ok(mut l) = log.lock() {
        l.push(Connect {
            atyp,
            host: host.clone(),
            port,
        });
    }
    let target = match names.get(&host) {
        Some(a) => *a,
        None => match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => {
                // Host unreachable.
                c.write_all(&[5, 4, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
                return Ok(());
            }
        },
    };
    let mut up = match TcpStream::connect(target).await {
        Ok(s) => s,
        Err(_) => {
            c.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            return Ok(());
        }
    };
    c.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut c, &mut up).await?;
    Ok(())
}
