//! Compiles etcd's wire protocol and detcd's internal formats. One call serves both the normal
//! build (tonic) and the simulator build (madsim-tonic); protoc comes vendored, so a fresh
//! machine builds with cargo alone.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let protos = [
        "proto/mvccpb/kv.proto",
        "proto/authpb/auth.proto",
        "proto/etcdserverpb/rpc.proto",
        "proto/v3electionpb/v3election.proto",
        "proto/v3lockpb/v3lock.proto",
        "proto/detcd/raft.proto",
        "proto/detcd/peer.proto",
    ];
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_build::configure()
        // Keys and values are `Bytes`: decoding slices the request buffer instead of copying.
        .bytes(["."])
        // The JSON gateway maps requests and responses through these descriptors.
        .file_descriptor_set_path(out.join("descriptors.bin"))
        .compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
