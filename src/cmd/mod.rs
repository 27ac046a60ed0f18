//! One module per subcommand.

pub mod info;
pub mod pending;

/// Exit code for an error: 2 when the user's input is at fault, 1 for anything else.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let bad_input = err.chain().any(|e| e.is::<glace_data::DataError>() || e.is::<glace_geometry::GeometryError>());
    if bad_input {
        2
    } else {
        1
    }
}
