//! recvault's integration tests: one binary, real parts (Garage on 127.0.0.1,
//! the real `recvault` executable, real files).

mod codecs;
mod common;
mod console;
mod crash;
mod deleting_dirs;
mod durability;
mod faults;
mod fleet;
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
mod restore;
mod retention;
mod serve;
mod servers;
mod store_conformance;
mod stores;
mod versions;
mod vicidial;
