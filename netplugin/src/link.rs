//! Netlink operations on links, addresses and IPv4 routes of the network namespace of the
//! calling thread: a [`Links`] holds an rtnetlink connection opened on that thread, so one
//! made inside [`crate::netns::run_async_in`] manages that namespace.
//!
//! Operations are idempotent where that makes sense: creating a bridge that exists, adding
//! an address or route that is present, deleting a link or route that is gone all succeed.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::{LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// The route protocol number (`proto` in `ip route`) that marks routes the pod network owns,
/// so that [`Links::routes`] can list exactly those.
pub const SKIFF_ROUTE_PROTOCOL: u8 = 0x53;

const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const ENODEV: i32 = 19;
const EEXIST: i32 = 17;
const EADDRNOTAVAIL: i32 = 99;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("open a netlink connection: {0}")]
    Connect(#[source] io::Error),
    #[error("link {0} does not exist")]
    NotFound(String),
    #[error("link {name} exists but is not a {kind}")]
    WrongKind { name: String, kind: &'static str },
    #[error("link {name}: {what}: {source}")]
    Link {
        name: String,
        what: &'static str,
        #[source]
        source: Box<rtnetlink::Error>,
    },
    #[error("address {address}/{prefix_len} on link {name}: {what}: {source}")]
    Address {
        name: String,
        address: IpAddr,
        prefix_len: u8,
        what: &'static str,
        #[source]
        source: Box<rtnetlink::Error>,
    },
    #[error("route {dest}/{prefix_len}: {what}: {source}")]
    Route {
        dest: Ipv4Addr,
        prefix_len: u8,
        what: &'static str,
        #[source]
        source: Box<rtnetlink::Error>,
    },
    #[error("list {what}: {source}")]
    List {
        what: &'static str,
        #[source]
        source: Box<rtnetlink::Error>,
    },
    #[error("ip forwarding (/proc/sys/net/ipv4/ip_forward): {0}")]
    Forwarding(#[source] io::Error),
}

/// An IPv4 route of the main table, as [`Links::routes`] lists it. A route without a
/// gateway is a blackhole (see [`Links::add_route`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    pub dest: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
}

/// The errno a netlink error carries (positive), if any.
fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => Some(message.raw_code().abs()),
        _ => None,
    }
}

fn link_err(name: &str, what: &'static str) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let name = name.to_string();
    move |source| LinkError::Link {
        name,
        what,
        source: Box::new(source),
    }
}

fn route_err(
    dest: Ipv4Addr,
    prefix_len: u8,
    what: &'static str,
) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    move |source| LinkError::Route {
        dest,
        prefix_len,
        what,
        source: Box::new(source),
    }
}

fn kind_of(message: &LinkMessage) -> Option<&InfoKind> {
    message.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
            LinkInfo::Kind(kind) => Some(kind),
            _ => None,
        }),
        _ => None,
    })
}

fn peer_index(message: &LinkMessage) -> Option<u32> {
    message.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::Link(index) => Some(*index),
        _ => None,
    })
}

/// A netlink connection to the network namespace of the thread that made it.
#[derive(Clone)]
pub struct Links {
    handle: rtnetlink::Handle,
}

impl Links {
    /// Opens a netlink socket in the calling thread's network namespace and spawns its
    /// connection task on the current tokio runtime (it must run on this thread's runtime,
    /// e.g. the current-thread runtime of [`crate::netns::run_async_in`], or on any runtime
    /// when the calling thread is in the namespace to manage anyway).
    pub fn connect() -> Result<Links, LinkError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| LinkError::Connect(io::Error::other(e)))?;
        let (connection, handle, _) = rtnetlink::new_connection().map_err(LinkError::Connect)?;
        runtime.spawn(connection);
        Ok(Links { handle })
    }

    /// The underlying rtnetlink handle, for operations this type does not cover.
    pub fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    async fn get(&self, name: &str) -> Result<Option<LinkMessage>, LinkError> {
        let mut links = self.handle.link().get().match_name(name).execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(link_err(name, "look up")(e)),
        }
    }

    async fn require(&self, name: &str) -> Result<u32, LinkError> {
        self.index(name)
            .await?
            .ok_or_else(|| LinkError::NotFound(name.to_string()))
    }

    /// The names of every link in the namespace.
    pub async fn names(&self) -> Result<Vec<String>, LinkError> {
        let mut links = self.handle.link().get().execute();
        let mut names = Vec::new();
        while let Some(link) = links.try_next().await.map_err(|source| LinkError::List {
            what: "links",
            source: Box::new(source),
        })? {
            names.extend(link.attributes.into_iter().filter_map(|attr| match attr {
                LinkAttribute::IfName(name) => Some(name),
                _ => None,
            }));
        }
        Ok(names)
    }

    /// The interface index of link `name`, `None` if there is no such link.
    pub async fn index(&self, name: &str) -> Result<Option<u32>, LinkError> {
        Ok(self.get(name).await?.map(|link| link.header.index))
    }

    /// Creates bridge `name` (up). A bridge of that name that exists already is fine (its
    /// state is left alone); another kind of link of that name is an error.
    pub async fn ensure_bridge(&self, name: &str) -> Result<(), LinkError> {
        if let Some(link) = self.get(name).await? {
            return match kind_of(&link) {
                Some(InfoKind::Bridge) => Ok(()),
                _ => Err(LinkError::WrongKind {
                    name: name.to_string(),
                    kind: "bridge",
                }),
            };
        }
        match self
            .handle
            .link()
            .add(LinkBridge::new(name).build())
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            // Made by someone else in the meantime: check it is a bridge.
            Err(e) if errno(&e) == Some(EEXIST) => match self.get(name).await? {
                Some(link) if kind_of(&link) == Some(&InfoKind::Bridge) => Ok(()),
                _ => Err(link_err(name, "create bridge")(e)),
            },
            Err(e) => Err(link_err(name, "create bridge")(e)),
        }
    }

    /// Creates the veth pair `name` — `peer_name` (both down). A pair that exists already
    /// in this namespace with these two names is fine; a link `name` that is anything else
    /// is an error.
    pub async fn create_veth(&self, name: &str, peer_name: &str) -> Result<(), LinkError> {
        let result = self
            .handle
            .link()
            .add(LinkVeth::new(name, peer_name).build())
            .execute()
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => {
                let (Some(link), Some(peer)) = (self.get(name).await?, self.get(peer_name).await?)
                else {
                    return Err(link_err(name, "create veth")(e));
                };
                let is_pair = kind_of(&link) == Some(&InfoKind::Veth)
                    && kind_of(&peer) == Some(&InfoKind::Veth)
                    && peer_index(&link) == Some(peer.header.index);
                if is_pair {
                    Ok(())
                } else {
                    Err(link_err(name, "create veth")(e))
                }
            }
            Err(e) => Err(link_err(name, "create veth")(e)),
        }
    }

    /// Moves link `name` into the network namespace `netns_file` is open on (a pin file or
    /// `/proc/<pid>/ns/net`). The link arrives down and without addresses.
    pub async fn move_to_netns(
        &self,
        name: &str,
        netns_file: &std::fs::File,
    ) -> Result<(), LinkError> {
        let index = self.require(name).await?;
        let message = LinkUnspec::new_with_index(index)
            .setns_by_fd(netns_file.as_raw_fd())
            .build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(link_err(name, "move to another network namespace"))
    }

    /// Attaches link `name` to bridge `bridge`.
    pub async fn set_master(&self, name: &str, bridge: &str) -> Result<(), LinkError> {
        let index = self.require(name).await?;
        let bridge_index = self.require(bridge).await?;
        let message = LinkUnspec::new_with_index(index)
            .controller(bridge_index)
            .build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(link_err(name, "attach to a bridge"))
    }

    async fn set_state(&self, name: &str, up: bool) -> Result<(), LinkError> {
        let index = self.require(name).await?;
        let builder = LinkUnspec::new_with_index(index);
        let message = if up { builder.up() } else { builder.down() }.build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(link_err(name, if up { "set up" } else { "set down" }))
    }

    /// Sets link `name` administratively up.
    pub async fn set_up(&self, name: &str) -> Result<(), LinkError> {
        self.set_state(name, true).await
    }

    /// Sets link `name` administratively down (its IPv4 addresses stay).
    pub async fn set_down(&self, name: &str) -> Result<(), LinkError> {
        self.set_state(name, false).await
    }

    /// Renames link `name` to `new` (the kernel wants the link down for that). Done already
    /// (no `name`, but a `new`) is fine.
    pub async fn rename(&self, name: &str, new: &str) -> Result<(), LinkError> {
        let Some(index) = self.index(name).await? else {
            return match self.index(new).await? {
                Some(_) => Ok(()),
                None => Err(LinkError::NotFound(name.to_string())),
            };
        };
        let message = LinkUnspec::new_with_index(index).name(new).build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(link_err(name, "rename"))
    }

    /// Adds `address/prefix_len` to link `name`; an address already there is fine.
    pub async fn add_address(
        &self,
        name: &str,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), LinkError> {
        let index = self.require(name).await?;
        match self
            .handle
            .address()
            .add(index, address, prefix_len)
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(source) => Err(LinkError::Address {
                name: name.to_string(),
                address,
                prefix_len,
                what: "add",
                source: Box::new(source),
            }),
        }
    }

    /// The addresses (IPv4 and IPv6) on link `name`, with their prefix lengths.
    pub async fn addresses(&self, name: &str) -> Result<Vec<(IpAddr, u8)>, LinkError> {
        let index = self.require(name).await?;
        let messages: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(link_err(name, "list addresses"))?;
        Ok(messages
            .iter()
            .filter_map(|message| {
                // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on
                // point-to-point links); IPv6 sends only IFA_ADDRESS.
                let local = message.attributes.iter().find_map(|attr| match attr {
                    AddressAttribute::Local(a) => Some(*a),
                    _ => None,
                });
                let address = local.or_else(|| {
                    message.attributes.iter().find_map(|attr| match attr {
                        AddressAttribute::Address(a) => Some(*a),
                        _ => None,
                    })
                })?;
                Some((address, message.header.prefix_len))
            })
            .collect())
    }

    /// Deletes link `name` (a veth takes its peer with it); no such link is fine.
    pub async fn delete_link(&self, name: &str) -> Result<(), LinkError> {
        let Some(index) = self.index(name).await? else {
            return Ok(());
        };
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
            Err(e) => Err(link_err(name, "delete")(e)),
        }
    }

    fn route_message(
        dest: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
        protocol: u8,
    ) -> RouteMessage {
        let mut builder = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dest, prefix)
            .protocol(RouteProtocol::from(protocol));
        builder = match gateway {
            Some(gateway) => builder.gateway(gateway),
            None => builder.kind(RouteType::BlackHole),
        };
        builder.build()
    }

    /// Adds (or replaces) the main-table IPv4 route `dest/prefix via gateway`, marked with
    /// `protocol` (e.g. [`SKIFF_ROUTE_PROTOCOL`]). Without a gateway the route is a
    /// blackhole (traffic to `dest/prefix` is dropped instead of following a less specific
    /// route). Replacing makes this idempotent and lets a route follow a moved gateway.
    pub async fn add_route(
        &self,
        dest: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
        protocol: u8,
    ) -> Result<(), LinkError> {
        self.handle
            .route()
            .add(Self::route_message(dest, prefix, gateway, protocol))
            .replace()
            .execute()
            .await
            .map_err(route_err(dest, prefix, "add"))
    }

    /// Deletes the main-table IPv4 route to `dest/prefix` that carries `protocol` (routes
    /// of other protocols are left alone); no such route is fine.
    pub async fn delete_route(
        &self,
        dest: Ipv4Addr,
        prefix: u8,
        protocol: u8,
    ) -> Result<(), LinkError> {
        let mut message = Self::route_message(dest, prefix, None, protocol);
        // Match unicast and blackhole routes alike.
        message.header.kind = RouteType::Unspec;
        match self.handle.route().del(message).execute().await {
            Ok(()) => Ok(()),
            Err(e) if matches!(errno(&e), Some(ESRCH | ENOENT | EADDRNOTAVAIL)) => Ok(()),
            Err(e) => Err(route_err(dest, prefix, "delete")(e)),
        }
    }

    /// The main-table IPv4 routes that carry `protocol`.
    pub async fn routes(&self, protocol: u8) -> Result<Vec<Route>, LinkError> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let messages: Vec<RouteMessage> = self
            .handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(|source| LinkError::List {
                what: "routes",
                source: Box::new(source),
            })?;
        let mut routes: Vec<Route> = messages
            .iter()
            .filter(|m| m.header.address_family == AddressFamily::Inet)
            .filter(|m| u8::from(m.header.protocol) == protocol)
            .filter(|m| {
                let table = m
                    .attributes
                    .iter()
                    .find_map(|attr| match attr {
                        RouteAttribute::Table(t) => Some(*t),
                        _ => None,
                    })
                    .unwrap_or(u32::from(m.header.table));
                table == u32::from(RouteHeader::RT_TABLE_MAIN)
            })
            .filter(|m| matches!(m.header.kind, RouteType::Unicast | RouteType::BlackHole))
            .map(|m| {
                let dest = m
                    .attributes
                    .iter()
                    .find_map(|attr| match attr {
                        RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(*a),
                        _ => None,
                    })
                    .unwrap_or(Ipv4Addr::UNSPECIFIED);
                let gateway = m.attributes.iter().find_map(|attr| match attr {
                    RouteAttribute::Gateway(RouteAddress::Inet(a)) => Some(*a),
                    _ => None,
                });
                Route {
                    dest,
                    prefix: m.header.destination_prefix_length,
                    gateway,
                }
            })
            .collect();
        routes.sort();
        Ok(routes)
    }

    /// Adds (or replaces) the default route `0.0.0.0/0 via gateway`.
    pub async fn add_default_route(&self, gateway: Ipv4Addr) -> Result<(), LinkError> {
        let protocol = u8::from(RouteProtocol::Static);
        self.add_route(Ipv4Addr::UNSPECIFIED, 0, Some(gateway), protocol)
            .await
    }

    /// Turns IPv4 forwarding on or off. `/proc/sys/net` shows the namespace of the thread
    /// that opens it, so this acts on the calling thread's namespace (not necessarily the
    /// one this connection talks to, if it was made on another thread).
    pub fn set_ip_forward(&self, on: bool) -> Result<(), LinkError> {
        set_ip_forward(on)
    }

    /// Whether IPv4 forwarding is on in the calling thread's namespace.
    pub fn ip_forward(&self) -> Result<bool, LinkError> {
        ip_forward()
    }
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Turns IPv4 forwarding on or off in the calling thread's network namespace.
pub fn set_ip_forward(on: bool) -> Result<(), LinkError> {
    std::fs::write(IP_FORWARD, if on { "1\n" } else { "0\n" }).map_err(LinkError::Forwarding)
}

/// Whether IPv4 forwarding is on in the calling thread's network namespace.
pub fn ip_forward() -> Result<bool, LinkError> {
    let value = std::fs::read_to_string(IP_FORWARD).map_err(LinkError::Forwarding)?;
    Ok(value.trim() != "0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns;

    /// A namespace pinned under a tempdir, removed on drop (also when a test fails).
    struct TestNs {
        pin: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    impl TestNs {
        fn new() -> TestNs {
            let dir = tempfile::tempdir().unwrap();
            let pin = dir.path().join("ns");
            netns::create(&pin).unwrap();
            TestNs { pin, _dir: dir }
        }
    }

    impl Drop for TestNs {
        fn drop(&mut self) {
            let _ = netns::remove(&self.pin);
        }
    }

    fn entries(dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn links_addresses_and_routes_in_a_netns() {
        if !skiff_testkit::root_or_skip("network namespaces, links") {
            return;
        }
        let ns = TestNs::new();
        let other = TestNs::new();
        let other_pin = other.pin.clone();
        netns::run_async_in(&ns.pin, move || async move {
            let links = Links::connect().unwrap();

            // lo exists in a fresh namespace; nothing else does.
            assert!(links.index("lo").await.unwrap().is_some());
            assert_eq!(links.index("br0").await.unwrap(), None);
            links.set_up("lo").await.unwrap();

            // Bridge: created, created again, and a non-bridge of that name is refused.
            links.ensure_bridge("br0").await.unwrap();
            links.ensure_bridge("br0").await.unwrap();
            let br = links.index("br0").await.unwrap().unwrap();
            let err = links.ensure_bridge("lo").await.unwrap_err();
            assert!(err.to_string().contains("lo"), "{err}");

            // Veth pair, idempotent; a clash with another link is an error.
            links.create_veth("va", "vb").await.unwrap();
            links.create_veth("va", "vb").await.unwrap();
            assert!(links.create_veth("br0", "vc").await.is_err());
            assert_eq!(links.index("vc").await.unwrap(), None);
            links.set_master("va", "br0").await.unwrap();
            let va = links.get("va").await.unwrap().unwrap();
            assert!(va.attributes.contains(&LinkAttribute::Controller(br)));
            links.set_up("va").await.unwrap();
            links.set_up("br0").await.unwrap();

            // Rename (the link is down), idempotent.
            links.rename("vb", "eth9").await.unwrap();
            links.rename("vb", "eth9").await.unwrap();
            assert_eq!(links.index("vb").await.unwrap(), None);
            assert!(links.index("eth9").await.unwrap().is_some());
            let err = links.rename("nosuch", "nosuch2").await.unwrap_err();
            assert!(err.to_string().contains("nosuch"), "{err}");

            // Addresses.
            let a: IpAddr = "10.250.7.1".parse().unwrap();
            links.add_address("br0", a, 24).await.unwrap();
            links.add_address("br0", a, 24).await.unwrap();
            let v4: Vec<_> = (links.addresses("br0").await.unwrap().into_iter())
                .filter(|(address, _)| address.is_ipv4())
                .collect();
            assert_eq!(v4, vec![(a, 24)]);
            let b: IpAddr = "10.250.7.2".parse().unwrap();
            links.add_address("eth9", b, 24).await.unwrap();
            links.set_up("eth9").await.unwrap();
            assert!(links.addresses("eth9").await.unwrap().contains(&(b, 24)));
            let err = links.addresses("nosuch").await.unwrap_err();
            assert_eq!(err.to_string(), "link nosuch does not exist");

            // Routes: ours are listed, the kernel's are not.
            let gw: Ipv4Addr = "10.250.7.9".parse().unwrap();
            let dest: Ipv4Addr = "10.244.3.0".parse().unwrap();
            assert!(links.routes(SKIFF_ROUTE_PROTOCOL).await.unwrap().is_empty());
            links
                .add_route(dest, 24, Some(gw), SKIFF_ROUTE_PROTOCOL)
                .await
                .unwrap();
            links
                .add_route(dest, 24, Some(gw), SKIFF_ROUTE_PROTOCOL)
                .await
                .unwrap();
            let hole: Ipv4Addr = "10.244.9.0".parse().unwrap();
            links
                .add_route(hole, 24, None, SKIFF_ROUTE_PROTOCOL)
                .await
                .unwrap();
            assert_eq!(
                links.routes(SKIFF_ROUTE_PROTOCOL).await.unwrap(),
                vec![
                    Route {
                        dest,
                        prefix: 24,
                        gateway: Some(gw)
                    },
                    Route {
                        dest: hole,
                        prefix: 24,
                        gateway: None
                    },
                ]
            );
            // The route follows a new gateway.
            let gw2: Ipv4Addr = "10.250.7.10".parse().unwrap();
            links
                .add_route(dest, 24, Some(gw2), SKIFF_ROUTE_PROTOCOL)
                .await
                .unwrap();
            assert!(
                links
                    .routes(SKIFF_ROUTE_PROTOCOL)
                    .await
                    .unwrap()
                    .contains(&Route {
                        dest,
                        prefix: 24,
                        gateway: Some(gw2)
                    })
            );
            // The kernel's connected route is there under its own protocol.
            let kernel = links.routes(u8::from(RouteProtocol::Kernel)).await.unwrap();
            assert!(
                kernel
                    .iter()
                    .any(|r| r.dest == "10.250.7.0".parse::<Ipv4Addr>().unwrap())
            );

            links.add_default_route(gw).await.unwrap();
            links.add_default_route(gw).await.unwrap();
            let statics = links.routes(u8::from(RouteProtocol::Static)).await.unwrap();
            assert_eq!(
                statics,
                vec![Route {
                    dest: Ipv4Addr::UNSPECIFIED,
                    prefix: 0,
                    gateway: Some(gw)
                }]
            );

            // Deleting with another protocol leaves our route alone.
            links
                .delete_route(dest, 24, u8::from(RouteProtocol::Static))
                .await
                .unwrap();
            assert_eq!(links.routes(SKIFF_ROUTE_PROTOCOL).await.unwrap().len(), 2);
            links
                .delete_route(dest, 24, SKIFF_ROUTE_PROTOCOL)
                .await
                .unwrap();
            links
                .delete_route(dest, 24, SKIFF_ROUTE_PROTOCOL)
                .await
                .unwrap();
            links
                .delete_route(hole, 24, SKIFF_ROUTE_PROTOCOL)
                .await
                .unwrap();
            assert!(links.routes(SKIFF_ROUTE_PROTOCOL).await.unwrap().is_empty());

            // Move one end into the other namespace: gone here.
            links.create_veth("vx", "vy").await.unwrap();
            let file = std::fs::File::open(&other_pin).unwrap();
            links.move_to_netns("vy", &file).await.unwrap();
            assert_eq!(links.index("vy").await.unwrap(), None);
            assert!(links.move_to_netns("vy", &file).await.is_err());

            // Delete: a veth takes its peer along; deleting again is fine.
            links.delete_link("va").await.unwrap();
            assert_eq!(links.index("eth9").await.unwrap(), None);
            links.delete_link("va").await.unwrap();
            links.delete_link("br0").await.unwrap();
            assert_eq!(links.index("br0").await.unwrap(), None);
        })
        .await
        .unwrap();

        // The moved end arrived in the other namespace.
        let arrived = netns::run_async_in(&other.pin, || async {
            let links = Links::connect().unwrap();
            links.index("vy").await.unwrap().is_some()
        })
        .await
        .unwrap();
        assert!(arrived);
    }

    #[tokio::test]
    async fn ip_forward_is_per_namespace() {
        if !skiff_testkit::root_or_skip("network namespaces, links") {
            return;
        }
        let ns = TestNs::new();
        let home = ip_forward().unwrap();
        let home_ifaces = entries("/proc/sys/net/ipv4/conf");
        // Before writing anything: /proc/sys/net seen from a thread inside the namespace
        // shows that namespace (a fresh one has only lo), so a write there stays there.
        let inside_ifaces = netns::run_in(&ns.pin, || entries("/proc/sys/net/ipv4/conf")).unwrap();
        assert_eq!(inside_ifaces, vec!["all", "default", "lo"]);
        assert_ne!(inside_ifaces, home_ifaces);

        let seen = netns::run_async_in(&ns.pin, move || async move {
            let links = Links::connect().unwrap();
            links.set_ip_forward(!home).unwrap();
            let flipped = links.ip_forward().unwrap();
            links.set_ip_forward(home).unwrap();
            let restored = links.ip_forward().unwrap();
            links.set_ip_forward(!home).unwrap();
            (flipped, restored)
        })
        .await
        .unwrap();
        assert_eq!(seen, (!home, home));
        assert_eq!(ip_forward().unwrap(), home);
        let inside = netns::run_in(&ns.pin, || ip_forward().unwrap()).unwrap();
        assert_eq!(inside, !home);
        assert_eq!(ip_forward().unwrap(), home);
    }

    #[test]
    fn connect_needs_a_runtime() {
        let made = std::thread::spawn(|| Links::connect().is_err())
            .join()
            .unwrap();
        assert!(made);
    }
}
