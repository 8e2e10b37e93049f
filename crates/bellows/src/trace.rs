//! The one reader of trace files, for `bellows sim` and `bellows load --trace`: plain
//! text or gzip, told apart by the file's first bytes (gzip's magic number), never by its
//! name, and decompressed in process by flate2 (several gzip members in a row are read as
//! one stream, as `gzip -dc` does).

use std::io::{BufRead, BufReader, Read};
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
pub fn read_to_string(path: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    open(path)?
        .read_to_string(&mut text)
        .with_context(|| format!("{}: cannot read the trace", path.display()))?;
    Ok(text)
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
}
