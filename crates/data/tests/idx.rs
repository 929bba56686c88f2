//! The IDX reader on synthetic files: round trips, raw and gzip, and every kind of damage a
//! download can suffer, each an error naming the file and the problem, never a panic.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

use common::idx_bytes;
use dl_data::{parse_idx, read_idx, DataError, IdxArray, Mnist};
use flate2::Compression;
use proptest::prelude::*;

/// The system allocator, noting the largest single allocation each thread makes, so a test can
/// check that a header announcing gigabytes allocates no gigabytes.
struct LargestAllocation;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to `System`; `note` only touches a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(pointer, layout, new_size) }
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// The largest single allocation `work` makes on this thread.
fn largest_allocation(work: impl FnOnce()) -> usize {
    LARGEST.with(|largest| largest.set(0));
    work();
    LARGEST.with(Cell::get)
}

/// `bytes` compressed with gzip at the default level.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    common::gzip(bytes, Compression::default())
}

/// A small valid 3-dimensional file: 2 × 3 × 4 bytes 0..24.
fn small_images() -> Vec<u8> {
    idx_bytes(&[2, 3, 4], &(0..24).collect::<Vec<u8>>())
}

/// Parses `bytes` as the file "damaged.idx" and returns the error's text, which must name it.
fn error_text(bytes: &[u8]) -> String {
    let error = parse_idx(bytes, Path::new("damaged.idx")).expect_err("damaged input was accepted");
    let text = error.to_string();
    assert!(
        text.contains("damaged.idx"),
        "error does not name the file: {text}"
    );
    text
}

#[test]
fn raw_round_trip() {
    let array = parse_idx(&small_images(), Path::new("images.idx")).unwrap();
    assert_eq!(array.dims, vec![2, 3, 4]);
    assert_eq!(array.data, (0..24).collect::<Vec<u8>>());
    assert_eq!(array.magic(), 0x803);
    assert_eq!(array.to_bytes(), small_images());
}

#[test]
fn gzip_round_trip_from_bytes_and_from_a_file() {
    let compressed = gzip(&small_images());
    assert_eq!(&compressed[..2], &[0x1f, 0x8b]);
    let expected = parse_idx(&small_images(), Path::new("raw")).unwrap();
    assert_eq!(
        parse_idx(&compressed, Path::new("images.idx.gz")).unwrap(),
        expected
    );

    let directory = tempfile::tempdir().unwrap();
    let raw_path = directory.path().join("images.idx");
    let gzip_path = directory.path().join("images.idx.gz");
    std::fs::write(&raw_path, small_images()).unwrap();
    std::fs::write(&gzip_path, &compressed).unwrap();
    assert_eq!(read_idx(&raw_path).unwrap(), expected);
    assert_eq!(read_idx(&gzip_path).unwrap(), expected);
}

#[test]
fn a_multi_member_gzip_is_read_whole() {
    // What `cat a.gz b.gz`, pigz and bgzip produce: several gzip members one after the other,
    // which together decompress to the concatenation (RFC 1952, 2.2).
    let bytes = small_images();
    let (head, tail) = bytes.split_at(11);
    let mut members = gzip(head);
    members.extend(gzip(tail));
    let expected = parse_idx(&bytes, Path::new("raw")).unwrap();
    assert_eq!(
        parse_idx(&members, Path::new("images.idx.gz")).unwrap(),
        expected
    );
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("images.idx.gz");
    std::fs::write(&path, &members).unwrap();
    assert_eq!(read_idx(&path).unwrap(), expected);
}

#[test]
fn one_to_four_dimensions_are_read() {
    for dims in [vec![5u32], vec![2, 3], vec![2, 1, 3], vec![1, 2, 1, 2]] {
        let count: u32 = dims.iter().product();
        let data: Vec<u8> = (0..count as u8).collect();
        let array = parse_idx(&idx_bytes(&dims, &data), Path::new("x")).unwrap();
        assert_eq!(
            array.dims,
            dims.iter().map(|&size| size as usize).collect::<Vec<_>>()
        );
        assert_eq!(array.data, data);
    }
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let error = read_idx(Path::new("/nonexistent/images.idx")).unwrap_err();
    assert!(matches!(error, DataError::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("/nonexistent/images.idx"));
}

#[test]
fn bad_magic_is_refused() {
    let mut bytes = small_images();
    bytes[0] = 0x12;
    let text = error_text(&bytes);
    assert!(text.contains("bad magic number 0x12000803"), "{text}");
    // A PNG, say, is not an IDX file either.
    let text = error_text(b"\x89PNG\r\n\x1a\n0000000000");
    assert!(text.contains("bad magic number"), "{text}");
}

#[test]
fn wrong_type_byte_is_refused() {
    let mut bytes = small_images();
    bytes[2] = 0x0D;
    let text = error_text(&bytes);
    assert!(
        text.contains("unsupported element type 0x0d (32-bit float)"),
        "{text}"
    );
    bytes[2] = 0x42;
    let text = error_text(&bytes);
    assert!(text.contains("unsupported element type 0x42"), "{text}");
}

#[test]
fn zero_or_too_many_dimensions_are_refused() {
    let text = error_text(&[0, 0, 8, 0]);
    assert!(text.contains("0 dimensions"), "{text}");
    let text = error_text(&idx_bytes(&[1, 1, 1, 1, 1], &[7]));
    assert!(text.contains("5 dimensions"), "{text}");
}

#[test]
fn truncated_header_is_refused() {
    let text = error_text(&[0, 0]);
    assert!(
        text.contains("truncated header: expected at least 4 bytes"),
        "{text}"
    );
    let text = error_text(&[]);
    assert!(text.contains("found 0"), "{text}");
    // Three dimensions announced, only one and a half sizes present: 4 + 6 of 16 header bytes.
    let text = error_text(&small_images()[..10]);
    assert!(
        text.contains("truncated header: expected 16 bytes for 3 dimensions, found 10"),
        "{text}"
    );
}

#[test]
fn truncated_data_is_refused() {
    let bytes = small_images();
    let text = error_text(&bytes[..bytes.len() - 5]);
    assert!(
        text.contains("truncated: expected 24 bytes of data, found 19"),
        "{text}"
    );
    let text = error_text(&gzip(&bytes[..bytes.len() - 5]));
    assert!(
        text.contains("truncated: expected 24 bytes of data, found 19"),
        "{text}"
    );
}

#[test]
fn extra_data_is_refused() {
    let mut bytes = small_images();
    bytes.extend_from_slice(&[1, 2, 3]);
    let text = error_text(&bytes);
    assert!(
        text.contains("extra data: expected 24 bytes of data"),
        "{text}"
    );
    assert!(text.contains("found 27"), "{text}");
    let text = error_text(&gzip(&bytes));
    assert!(
        text.contains("extra data: expected 24 bytes of data"),
        "{text}"
    );
}

#[test]
fn garbage_gzip_is_refused() {
    let mut bytes = vec![0x1f, 0x8b];
    bytes.extend((0..200u32).map(|value| (value * 37 % 251) as u8));
    let text = error_text(&bytes);
    assert!(text.contains("gzip"), "{text}");

    // A real gzip stream with its deflate data damaged: the CRC or the decoder notices.
    let mut compressed = gzip(&small_images());
    let middle = compressed.len() / 2;
    compressed[middle] ^= 0xFF;
    compressed[middle + 1] ^= 0x55;
    assert!(parse_idx(&compressed, Path::new("damaged.idx")).is_err());

    // A gzip stream cut short.
    let compressed = gzip(&small_images());
    let text = error_text(&compressed[..compressed.len() - 6]);
    assert!(text.contains("gzip"), "{text}");
}

#[test]
fn huge_claimed_dimensions_are_refused_before_allocating() {
    // 4 × (2³² − 1) elements overflows u64; 65536 × 32769 is just over the 2³¹ limit.
    let text = error_text(&idx_bytes(&[u32::MAX; 4], &[]));
    assert!(
        text.contains("announce more than 2147483648 elements"),
        "{text}"
    );
    let text = error_text(&idx_bytes(&[65536, 32769], &[1, 2, 3]));
    assert!(text.contains("announce more than"), "{text}");

    // At the limit (2 GiB announced) but three bytes of data: refused as truncated, and the
    // largest buffer allocated stays small, raw or gzip (whose decoder needs ~100 KiB).
    let raw = idx_bytes(&[65536, 32768], &[1, 2, 3]);
    let compressed = gzip(&raw);
    let largest = largest_allocation(|| {
        let text = error_text(&raw);
        assert!(
            text.contains("truncated: expected 2147483648 bytes of data, found 3"),
            "{text}"
        );
        let text = error_text(&compressed);
        assert!(
            text.contains("truncated: expected 2147483648 bytes of data, found 3"),
            "{text}"
        );
    });
    assert!(
        largest < 1 << 20,
        "a hostile header made a {largest}-byte allocation"
    );
    // The same holds for a file read from disk.
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("huge.idx");
    std::fs::write(&path, &raw).unwrap();
    let largest = largest_allocation(|| assert!(read_idx(&path).is_err()));
    assert!(
        largest < 1 << 20,
        "a hostile header made a {largest}-byte allocation"
    );
}

/// Writes a synthetic MNIST directory with `images` and `labels` files into `root/mnist`.
fn write_mnist(root: &Path, train_images: &[u8], train_labels: &[u8]) -> PathBuf {
    let directory = root.join("mnist");
    std::fs::create_dir_all(&directory).unwrap();
    let test_images = idx_bytes(&[2, 28, 28], &[0; 2 * 784]);
    let test_labels = idx_bytes(&[2], &[3, 4]);
    for (name, bytes) in [
        ("train-images-idx3-ubyte.gz", train_images),
        ("train-labels-idx1-ubyte.gz", train_labels),
        ("t10k-images-idx3-ubyte.gz", &test_images[..]),
        ("t10k-labels-idx1-ubyte.gz", &test_labels[..]),
    ] {
        std::fs::write(directory.join(name), gzip(bytes)).unwrap();
    }
    directory
}

/// Writes a synthetic MNIST directory into a fresh folder (see [`write_mnist`]) and asserts
/// that loading it fails with a message containing every one of `parts`.
fn assert_mnist_load_error(train_images: &[u8], train_labels: &[u8], parts: &[&str]) {
    let root = tempfile::tempdir().unwrap();
    write_mnist(root.path(), train_images, train_labels);
    let text = Mnist::load(root.path()).unwrap_err().to_string();
    for part in parts {
        assert!(text.contains(part), "{text}");
    }
}

#[test]
fn count_mismatch_between_images_and_labels_is_refused() {
    let images = idx_bytes(&[3, 28, 28], &[0; 3 * 784]);
    let labels = idx_bytes(&[4], &[1, 2, 3, 4]);
    assert_mnist_load_error(
        &images,
        &labels,
        &[
            "train-labels-idx1-ubyte.gz: 4 labels",
            "train-images-idx3-ubyte.gz has 3 images",
        ],
    );
}

#[test]
fn label_out_of_range_is_refused_with_its_index() {
    let images = idx_bytes(&[4, 28, 28], &[0; 4 * 784]);
    let labels = idx_bytes(&[4], &[9, 0, 10, 11]);
    assert_mnist_load_error(
        &images,
        &labels,
        &[
            "train-labels-idx1-ubyte.gz",
            "label 10 at index 2 is out of range 0..=9",
        ],
    );
}

#[test]
fn mnist_requires_exact_magics_and_image_size() {
    // Labels where images belong: magic 0x801 instead of 0x803.
    let labels = idx_bytes(&[2], &[1, 2]);
    assert_mnist_load_error(
        &labels,
        &labels,
        &[
            "train-images-idx3-ubyte.gz: magic number 0x00000801",
            "expected 0x00000803",
        ],
    );

    let images = idx_bytes(&[2, 27, 29], &[0; 2 * 27 * 29]);
    assert_mnist_load_error(&images, &labels, &["images are 27×29, expected 28×28"]);

    let images = idx_bytes(&[2, 28, 28], &[0; 2 * 784]);
    assert_mnist_load_error(
        &images,
        &images,
        &["train-labels-idx1-ubyte.gz: magic number 0x00000803"],
    );
}

/// One way of damaging a valid file.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { position: usize, bit: u8 },
    Truncate { length: usize },
    Insert { position: usize, bytes: Vec<u8> },
    Overwrite { position: usize, byte: u8 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(position, bit)| Mutation::FlipBit { position, bit }),
        any::<usize>().prop_map(|length| Mutation::Truncate { length }),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(position, bytes)| Mutation::Insert { position, bytes }),
        (any::<usize>(), any::<u8>())
            .prop_map(|(position, byte)| Mutation::Overwrite { position, byte }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::FlipBit { position, bit } if !bytes.is_empty() => {
            let index = position % bytes.len();
            bytes[index] ^= 1 << bit;
        }
        Mutation::Truncate { length } => bytes.truncate(length % (bytes.len() + 1)),
        Mutation::Insert {
            position,
            bytes: inserted,
        } => {
            let index = position % (bytes.len() + 1);
            bytes.splice(index..index, inserted.iter().copied());
        }
        Mutation::Overwrite { position, byte } if !bytes.is_empty() => {
            let index = position % bytes.len();
            bytes[index] = *byte;
        }
        _ => {}
    }
}

/// `bytes` after every one of `mutations`, in order.
fn mutated(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        mutate(&mut bytes, mutation);
    }
    bytes
}

/// Checks that parsing returns (Ok with consistent sizes, or Err) instead of panicking.
fn parses_without_panic(bytes: &[u8]) {
    if let Ok(IdxArray { dims, data }) = parse_idx(bytes, Path::new("fuzz.idx")) {
        assert_eq!(dims.iter().product::<usize>(), data.len());
        assert!((1..=4).contains(&dims.len()));
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        parses_without_panic(&bytes);
    }

    #[test]
    fn random_headers_never_panic(
        dimension_count in 0u8..6,
        sizes in proptest::collection::vec(any::<u32>(), 0..6),
        data in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = vec![0, 0, 8, dimension_count];
        for size in sizes {
            bytes.extend_from_slice(&size.to_be_bytes());
        }
        bytes.extend_from_slice(&data);
        parses_without_panic(&bytes);
        parses_without_panic(&gzip(&bytes));
    }

    #[test]
    fn mutated_raw_files_never_panic(mutations in proptest::collection::vec(mutation(), 1..4)) {
        parses_without_panic(&mutated(small_images(), &mutations));
    }

    #[test]
    fn mutated_gzip_files_never_panic(mutations in proptest::collection::vec(mutation(), 1..4)) {
        parses_without_panic(&mutated(gzip(&small_images()), &mutations));
    }
}
