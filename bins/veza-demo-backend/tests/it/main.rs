//! Integration tests: real sockets on 127.0.0.1 port 0, in-process backends and the binary.

mod binary;
mod http;
mod lifecycle;
mod stream;
mod support;
mod websocket;
