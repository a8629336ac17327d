/// Why a miner or validator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SubnetError {
    /// The node refused or could not be reached.
    #[error(transparent)]
    Client(#[from] agora_client::ClientError),
    /// A transaction was included but its call failed.
    #[error("{call} failed on chain: {message} (code {code})")]
    TxFailed {
        /// The call.
        call: &'static str,
        /// The ledger's error code.
        code: i32,
        /// The ledger's message.
        message: String,
    },
    /// The subnet does not exist.
    #[error("subnet {0} does not exist")]
    UnknownSubnet(u16),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// A key could not be loaded from the wallet.
    #[error(transparent)]
    Wallet(#[from] agora_wallet::WalletError),
    /// A command-line value is unusable.
    #[error("{0}")]
    Usage(String),
    /// The wire client could not be built.
    #[error(transparent)]
    Wire(#[from] agora_wire::WireError),
}
