//! recvault's integration tests: one binary, real parts (Garage on 127.0.0.1,
//! the real `recvault` executable, real files).

mod common;
mod crash;
mod faults;
mod hold_races;
mod hostile;
mod layout;
mod local_faults;
mod object_lock;
mod operation;
mod pipeline;
mod proxy;
mod recovery;
mod requests;
mod retention;
mod store_conformance;
mod versions;
mod vicidial;
