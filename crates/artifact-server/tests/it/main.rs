//! End-to-end tests of the HTTP server (SPEC §4.4): through `app(state).oneshot(request)`
//! without a socket, and on real loopback sockets with a real HTTP client.

mod access;
mod auth;
mod faults;
mod log;
mod malformed;
mod ops;
mod pilot;
mod round_trip;
mod sse;
mod support;
mod uploads;
