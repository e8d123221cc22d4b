//! The runtime's service tests: the real runtime on its own socket in front of the real control
//! plane (see `stack`), driven over HTTP with assertions signed as the gateway signs them. The
//! control plane is reached through a relay that fails or holds the calls a test selects.

mod grants;
mod races;
mod relay;
mod stack;
mod statements;
mod warehouses;
