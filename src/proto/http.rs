//! HTTP/1.1 request heads and the handful of responses served before a DERP upgrade.
//! Placeholder until the parser lands in the next commit.
