//! The compiled descriptors of etcd's protos (build.rs writes them): what the JSON gateway maps
//! JSON through and the gRPC metrics enumerate methods from.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, MethodDescriptor};

/// The gRPC services of the client port.
pub const CLIENT_SERVICES: &[&str] = &[
    "etcdserverpb.KV",
    "etcdserverpb.Watch",
    "etcdserverpb.Lease",
    "etcdserverpb.Cluster",
    "etcdserverpb.Maintenance",
    "etcdserverpb.Auth",
    "v3electionpb.Election",
    "v3lockpb.Lock",
];

/// The descriptor set build.rs writes.
static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// Every message, enum and service the member compiles.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTORS).expect("build.rs writes a valid descriptor set")
    })
}

/// `service`'s `method`, if the member has it.
pub fn method(service: &str, method: &str) -> Option<MethodDescriptor> {
    pool()
        .get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)
}

/// Every method of the client port's services, in their order.
pub fn client_methods() -> Vec<MethodDescriptor> {
    CLIENT_SERVICES
        .iter()
        .flat_map(|s| {
            let service = pool()
                .get_service_by_name(s)
                .expect("every client service is compiled");
            service.methods().collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_service_is_compiled() {
        assert_eq!(client_methods().len(), 48);
        assert!(method("etcdserverpb.KV", "Range").is_some());
        assert!(method("etcdserverpb.KV", "Nope").is_none());
    }
}
