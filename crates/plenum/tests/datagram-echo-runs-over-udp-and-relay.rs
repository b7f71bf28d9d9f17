//! The echo example (`examples/echo.rs`): one service written against `DatagramSocket`
//! answers over UDP and over a relay room, and every echo comes back.

#[path = "../examples/echo.rs"]
mod echo;

#[test]
fn the_echo_example_runs_over_udp_and_relay() {
    echo::main().expect("every echo came back over both");
}
