//! The one reader of trace files, for `bellows sim` and `bellows load --trace`: plain
//! text or gzip, told apart by the file's first bytes (gzip's magic number), never by its
//! name, and decompressed in process by flate2 (several gzip members in a row are read as
//! one stream, as `gzip -dc` does). A trace is one count of requests a line, a second
//! each (blank lines and `#` comments skipped); a bad line is reported as `FILE:LINE`.

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;

/// gzip's magic number (RFC 1952, section 2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The trace's text as it arrives, decompressed when it is gzip.
pub fn open(path: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    let cannot = || format!("{}: cannot read the trace", path.display());
    let file = std::fs::File::open(path).with_context(cannot)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let gzip = reader
        .fill_buf()
        .with_context(cannot)?
        .starts_with(&GZIP_MAGIC);
    Ok(if gzip {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(reader),
        ))
    } else {
        Box::new(reader)
    })
}

/// The whole trace as text.
#[cfg(test)]
fn read_to_string(path: &Path) -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    open(path)?
        .read_to_string(&mut text)
        .with_context(|| format!("{}: cannot read the trace", path.display()))?;
    Ok(text)
}

/// The trace's counts, a second each, from the `skip`th second on and at most `limit`
/// of them: each a finite non-negative number. An empty result is the caller's to judge.
pub fn counts(path: &Path, skip: usize, limit: usize) -> anyhow::Result<Vec<f64>> {
    let name = path.display();
    let mut reader = open(path)?;
    let mut out = Vec::new();
    let mut line = String::new();
    let (mut no, mut seconds) = (0usize, 0usize);
    while out.len() < limit {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => anyhow::bail!("{name}:{}: cannot read: {e}", no + 1),
        }
        no += 1;
        let v = line.trim();
        if v.is_empty() || v.starts_with('#') {
            continue;
        }
        seconds += 1;
        if seconds <= skip {
            continue;
        }
        match v.parse::<f64>() {
            Ok(c) if c.is_finite() && c >= 0.0 => out.push(c),
            _ => anyhow::bail!(
                "{name}:{no}: `{}` is not a count of requests (one non-negative number a line)",
                v.chars().take(40).collect::<String>()
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn gzip_is_told_by_its_content_not_its_name() {
        let dir = std::env::temp_dir().join(format!("bellows-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = "1\n2\n3\n";
        // Gzipped without .gz, and plain text named .gz: both read as what they hold.
        let zipped = dir.join("zipped.txt");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        std::fs::write(&zipped, gz.finish().unwrap()).unwrap();
        let plain = dir.join("plain.gz");
        std::fs::write(&plain, text).unwrap();
        assert_eq!(read_to_string(&zipped).unwrap(), text);
        assert_eq!(read_to_string(&plain).unwrap(), text);
        // Two members in a row are one stream, as with `cat a.gz b.gz`.
        let twice = dir.join("twice");
        let member = std::fs::read(&zipped).unwrap();
        std::fs::write(&twice, [member.clone(), member].concat()).unwrap();
        assert_eq!(read_to_string(&twice).unwrap(), format!("{text}{text}"));
        let err = read_to_string(&dir.join("missing")).unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot read the trace"),
            "{err:#}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn counts_skip_comments_and_blank_lines_and_name_a_bad_line() {
        let dir = std::env::temp_dir().join(format!("bellows-counts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "# requests a second\n4\n0\n\n2.5\n7\n").unwrap();
        assert_eq!(counts(&good, 0, 100).unwrap(), [4.0, 0.0, 2.5, 7.0]);
        assert_eq!(counts(&good, 1, 2).unwrap(), [0.0, 2.5]);
        assert!(counts(&good, 9, 2).unwrap().is_empty());
        for bad in ["1\n\nfive\n", "1\n-2\n", "1\nNaN\n"] {
            std::fs::write(dir.join("bad"), bad).unwrap();
            let err = format!("{:#}", counts(&dir.join("bad"), 0, 100).unwrap_err());
            assert!(
                err.contains("bad:") && err.contains("is not a count of requests"),
                "{err}"
            );
        }
        std::fs::write(dir.join("bad"), "1\n\nfive\n").unwrap();
        let err = format!("{:#}", counts(&dir.join("bad"), 0, 100).unwrap_err());
        assert!(err.contains("bad:3: `five`"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
