//! One module per subcommand.

pub mod ablation;
pub mod bench;
pub mod convert;
pub mod demo;
pub mod eval;
pub mod export;
pub mod features;
pub mod info;
pub mod localize;
pub mod map;
pub mod real;
pub mod serve;
pub mod synth;

/// Parses a positive, finite number (NaN, infinities, zero and negatives mean nothing for a
/// threshold or a size), refused at argument parsing with the option's name.
pub fn positive_number(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}': expected a positive number")),
    }
}

/// Exit code for an error: 2 when the user's input is at fault, 1 for anything else.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let bad_input = err.chain().any(|e| {
        e.downcast_ref::<glace::Error>().is_some_and(glace::Error::is_input_error)
            || e.is::<glace_data::DataError>()
            || e.is::<glace_geometry::GeometryError>()
            || e.is::<glace_localize::LocalizeError>()
            || e.is::<glace_nn::WeightsError>()
            || matches!(
                e.downcast_ref::<glace_synth::SynthError>(),
                Some(glace_synth::SynthError::Config(_) | glace_synth::SynthError::Data(_))
            )
    });
    if bad_input {
        2
    } else {
        1
    }
}

/// A progress bar on stderr showing rate and ETA (hidden when stderr is not a terminal).
pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// The command-line option that sets a library field: `--` and the field with dashes, but for the
/// two options the command line names apart from their [`glace::MapOptions`] fields.
pub fn flag(field: &str) -> String {
    match field {
        "noise_std" => "--noise".into(),
        "rotation_deg" => "--rotation".into(),
        f => format!("--{}", f.replace('_', "-")),
    }
}

/// A library error that names a field (`max_error`), said with the command line's option for it
/// (`--max-error`); other errors as they are.
pub fn as_flags(e: glace::Error) -> glace::Error {
    match e {
        glace::Error::Usage { option, message }
            if !option.is_empty() && option.chars().all(|c| c.is_ascii_lowercase() || c == '_') =>
        {
            glace::Error::Usage { option: flag(&option), message }
        }
        other => other,
    }
}
