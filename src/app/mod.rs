//! The application: the configuration file ([`config`]), the daemon ([`daemon`]), its HTTP
//! endpoint ([`http`]), the knowledge base read from disk ([`patterns`]), the command line
//! ([`cli`]) and the demo ([`demo`]). Only this layer
//! knows all the others.

pub mod actions;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod http;
pub mod patterns;
