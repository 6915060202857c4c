//! `Unimplemented` answers for the parts of etcd's API not built yet, written out for both
//! builds (the simulator's generated traits have no default methods).

use tonic::Status;

/// The status for an RPC detcd does not serve yet.
pub fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!("detcd: {rpc} is not implemented yet"))
}

/// Writes unary methods answering [`not_yet`], in the shape `#[async_trait]` gives trait
/// methods (the attribute runs before this macro expands, so it cannot desugar them itself).
macro_rules! unimplemented_rpcs {
    ($($method:ident($req:ty) -> $resp:ty;)*) => {
        $(
            fn $method<'life0, 'async_trait>(
                &'life0 self,
                _request: tonic::Request<$req>,
            ) -> ::std::pin::Pin<Box<
                dyn ::std::future::Future<Output = Result<tonic::Response<$resp>, tonic::Status>>
                    + Send
                    + 'async_trait,
            >>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move { Err($crate::server::unimplemented::not_yet(stringify!($method))) })
            }
        )*
    };
}
pub(crate) use unimplemented_rpcs;

/// A stream type for streaming RPCs that are not served yet.
pub type NoStream<T> = futures::stream::Empty<Result<T, Status>>;
