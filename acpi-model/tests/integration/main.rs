//! Integration tests of the platform and its firmware.

#![allow(clippy::unwrap_used, missing_docs)]

mod acpica;
mod common;
mod hotplug;
mod io_paths;
mod methods;
