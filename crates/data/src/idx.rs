//! The IDX file format, in which MNIST and Fashion-MNIST are distributed (course §5.1, image
//! classification), raw or gzip-compressed.
//!
//! An IDX file is a big-endian header followed by the data:
//!
//! | bytes | meaning |
//! |---|---|
//! | 0–1 | zero |
//! | 2 | element type: `0x08` unsigned byte (the only one MNIST uses) |
//! | 3 | number of dimensions d |
//! | 4 .. 4 + 4d | each dimension's size, a big-endian u32 |
//! | then | the product of the sizes, one byte per element, row-major |
//!
//! So MNIST's image files start with the magic number `0x00000803` (bytes, 3 dimensions:
//! count × 28 × 28) and its label files with `0x00000801` (bytes, 1 dimension: count).
//!
//! Nothing read here is trusted: every malformed input is a [`DataError::Corrupt`] naming the
//! file and the problem, never a panic, and no buffer grows beyond what the header announces
//! (plus one byte, to notice extra data) — a header claiming 10¹² elements is refused before
//! anything is allocated, and a gzip stream that decompresses to more than announced is cut off.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

use crate::error::{DataError, Result};

/// The two bytes that start every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The element type byte for unsigned bytes, the only type supported.
pub const IDX_UNSIGNED_BYTE: u8 = 0x08;

/// The largest number of elements accepted (2³¹): MNIST's largest file has 47 million.
pub const MAX_IDX_ELEMENTS: u64 = 1 << 31;

/// The largest number of dimensions accepted.
pub const MAX_IDX_DIMENSIONS: usize = 4;

/// An n-dimensional array of bytes read from an IDX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The size of each dimension, outermost first (for MNIST images: count, 28, 28).
    pub dims: Vec<usize>,
    /// The elements in row-major order; its length is the product of `dims`.
    pub data: Vec<u8>,
}

impl IdxArray {
    /// The magic number this array has in a file: `0x0000_08dd` for unsigned bytes in `dd`
    /// dimensions (`0x803` for MNIST images, `0x801` for labels).
    pub fn magic(&self) -> u32 {
        (u32::from(IDX_UNSIGNED_BYTE) << 8) | self.dims.len() as u32
    }

    /// The array as an IDX file (uncompressed): the inverse of [`parse_idx`], used to write
    /// test fixtures. Dimensions larger than `u32::MAX` cannot be written and are truncated.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(4 + 4 * self.dims.len() + self.data.len());
        bytes.extend_from_slice(&self.magic().to_be_bytes());
        for &size in &self.dims {
            bytes.extend_from_slice(&(size as u32).to_be_bytes());
        }
        bytes.extend_from_slice(&self.data);
        bytes
    }
}

/// Reads an IDX file, gzip-compressed (detected by its first two bytes, `1f 8b`) or raw.
///
/// The file is streamed, never read whole before its header is checked, so a huge or hostile
/// file costs no more memory than its header announces.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let file = File::open(path).map_err(|source| DataError::io(path, source))?;
    let file_length = file
        .metadata()
        .map_err(|source| DataError::io(path, source))?
        .len();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let start = reader
        .fill_buf()
        .map_err(|source| DataError::io(path, source))?;
    let is_gzip = start.starts_with(&GZIP_MAGIC);
    decode(reader, is_gzip, file_length, path)
}

/// Parses the bytes of an IDX file, gzip-compressed or raw; `source` names them in errors.
///
/// ```
/// use std::path::Path;
/// // 2 × 3 bytes: magic 0x00000802, sizes 2 and 3, then the six elements.
/// let bytes = [0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6];
/// let array = dl_data::parse_idx(&bytes, Path::new("example.idx"))?;
/// assert_eq!(array.dims, vec![2, 3]);
/// assert_eq!(array.data, vec![1, 2, 3, 4, 5, 6]);
///
/// let error = dl_data::parse_idx(&bytes[..15], Path::new("example.idx")).unwrap_err();
/// assert!(error.to_string().contains("truncated: expected 6 bytes of data, found 3"));
/// # Ok::<(), dl_data::DataError>(())
/// ```
pub fn parse_idx(bytes: &[u8], source: &Path) -> Result<IdxArray> {
    decode(
        bytes,
        bytes.starts_with(&GZIP_MAGIC),
        bytes.len() as u64,
        source,
    )
}

/// Decodes from `reader`, through a gzip decoder when `is_gzip`. `input_length` is the size of
/// the (possibly compressed) input, used only to size the first allocation.
fn decode<R: BufRead>(
    reader: R,
    is_gzip: bool,
    input_length: u64,
    source: &Path,
) -> Result<IdxArray> {
    if is_gzip {
        // A deflate stream of real image data expands a few times; starting the buffer at 8×
        // the compressed size avoids both reallocations and large up-front allocations.
        decode_stream(
            MultiGzDecoder::new(reader),
            input_length.saturating_mul(8),
            None,
            source,
        )
    } else {
        decode_stream(reader, input_length, Some(input_length), source)
    }
}

/// Reads up to `limit` bytes from `reader` into `buffer`, returning how many were read.
fn read_at_most(
    reader: &mut impl Read,
    limit: u64,
    buffer: &mut Vec<u8>,
    source: &Path,
) -> Result<usize> {
    reader
        .take(limit)
        .read_to_end(buffer)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::InvalidInput
            | std::io::ErrorKind::InvalidData
            | std::io::ErrorKind::UnexpectedEof => DataError::corrupt(
                source,
                format!("not a valid gzip stream ({error}); delete the file and download it again"),
            ),
            _ => DataError::io(source, error),
        })
}

/// Reads header and data from a decompressed stream. `allocation_hint` bounds the first
/// allocation; `raw_length` is the whole input's length when it is not compressed.
fn decode_stream(
    mut reader: impl Read,
    allocation_hint: u64,
    raw_length: Option<u64>,
    source: &Path,
) -> Result<IdxArray> {
    let mut magic = Vec::with_capacity(4);
    let found = read_at_most(&mut reader, 4, &mut magic, source)?;
    if found < 4 {
        return Err(DataError::corrupt(
            source,
            format!(
                "truncated header: expected at least 4 bytes (the magic number), found {found}"
            ),
        ));
    }
    let magic_number = u32::from_be_bytes([magic[0], magic[1], magic[2], magic[3]]);
    if magic[0] != 0 || magic[1] != 0 {
        return Err(DataError::corrupt(
            source,
            format!(
                "bad magic number 0x{magic_number:08x}: an IDX file starts with two zero bytes; \
                 this is not an IDX file (or a damaged one)"
            ),
        ));
    }
    let element_type = magic[2];
    if element_type != IDX_UNSIGNED_BYTE {
        let name = match element_type {
            0x09 => "signed byte",
            0x0B => "16-bit integer",
            0x0C => "32-bit integer",
            0x0D => "32-bit float",
            0x0E => "64-bit float",
            _ => "not an IDX type",
        };
        return Err(DataError::corrupt(
            source,
            format!(
                "unsupported element type 0x{element_type:02x} ({name}) in magic number \
                 0x{magic_number:08x}; only 0x08 (unsigned byte) is supported"
            ),
        ));
    }
    let dimension_count = usize::from(magic[3]);
    if !(1..=MAX_IDX_DIMENSIONS).contains(&dimension_count) {
        return Err(DataError::corrupt(
            source,
            format!(
                "{dimension_count} dimensions in magic number 0x{magic_number:08x}; \
                 expected 1 to {MAX_IDX_DIMENSIONS}"
            ),
        ));
    }

    let header_length = 4 + 4 * dimension_count;
    let mut sizes = Vec::with_capacity(4 * dimension_count);
    let found = read_at_most(&mut reader, 4 * dimension_count as u64, &mut sizes, source)?;
    if found < 4 * dimension_count {
        return Err(DataError::corrupt(
            source,
            format!(
                "truncated header: expected {header_length} bytes for {dimension_count} \
                 dimensions, found {}",
                4 + found
            ),
        ));
    }
    let dims: Vec<u64> = sizes
        .chunks_exact(4)
        .map(|size| u64::from(u32::from_be_bytes([size[0], size[1], size[2], size[3]])))
        .collect();
    // Each size is below 2³², and there are at most four, so the product could overflow u64:
    // checked multiplication, and a limit, before anything is allocated.
    let element_count = dims
        .iter()
        .try_fold(1u64, |product, &size| product.checked_mul(size))
        .filter(|&count| count <= MAX_IDX_ELEMENTS)
        .ok_or_else(|| {
            DataError::corrupt(
                source,
                format!(
                    "dimensions {dims:?} announce more than {MAX_IDX_ELEMENTS} elements; \
                     the header is damaged"
                ),
            )
        })?;

    let first_allocation = element_count
        .saturating_add(1)
        .min(allocation_hint.saturating_add(1));
    let mut data = Vec::with_capacity(first_allocation as usize);
    // One byte more than announced, to notice extra data without reading an unbounded stream.
    let found = read_at_most(&mut reader, element_count + 1, &mut data, source)? as u64;
    if found < element_count {
        return Err(DataError::corrupt(
            source,
            format!("truncated: expected {element_count} bytes of data, found {found}"),
        ));
    }
    if found > element_count {
        let found = match raw_length {
            Some(length) => (length - header_length as u64).to_string(),
            None => format!("more than {element_count}"),
        };
        return Err(DataError::corrupt(
            source,
            format!(
                "extra data: expected {element_count} bytes of data for dimensions {dims:?}, \
                 found {found}"
            ),
        ));
    }
    Ok(IdxArray {
        dims: dims.iter().map(|&size| size as usize).collect(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_number_follows_the_dimension_count() {
        let images = IdxArray {
            dims: vec![1, 2, 2],
            data: vec![0; 4],
        };
        assert_eq!(images.magic(), 0x803);
        let bytes = images.to_bytes();
        assert_eq!(&bytes[..4], &[0, 0, 8, 3]);
        assert_eq!(parse_idx(&bytes, Path::new("x")).unwrap(), images);
    }

    #[test]
    fn zero_sized_dimension_is_an_empty_array() {
        let bytes = [0, 0, 8, 1, 0, 0, 0, 0];
        let array = parse_idx(&bytes, Path::new("x")).unwrap();
        assert_eq!(array.dims, vec![0]);
        assert!(array.data.is_empty());
    }
}
