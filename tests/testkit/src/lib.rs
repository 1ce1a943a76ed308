//! Test support for Berth, used by the integration tests, the demo and the benchmark.

pub mod bus;
pub mod demo;
pub mod image;
pub mod proxy;
pub mod registry;
