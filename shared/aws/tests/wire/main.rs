//! The AWS adapters at the wire, in one test binary (each binary links the whole SDK with debug info, so one
//! binary instead of five saves link time and gigabytes in the shared target directory).

mod audit_mac;
mod bedrock;
mod control_plane;
mod knowledge;
mod policies;
mod signers;
mod sts;
mod timeouts;
