//! The `tinyderp` binary: parse the command line, start logging, run the server.

fn main() {}
