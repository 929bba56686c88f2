//! A run's files under faults: the program killed with SIGKILL at every file operation of its
//! saves, and a disk that fills up (the file-size limit, RLIMIT_FSIZE). Each ends with the
//! previous complete set of files or the new one, never a torn mix, and resuming from what is
//! left ends with the uninterrupted run's checkpoint, byte for byte.

mod common;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use common::{synthetic_data, text, train, train_command, BINARY};

/// The flags of every run here: logistic regression (small files, quick epochs) at a constant
/// learning rate (a cosine over 1 epoch would end where the one over 2 is halfway, so 1 + 1
/// could not equal 2).
const MODEL: [&str; 4] = ["--model", "logreg", "--schedule", "constant"];

/// The epochs of the uninterrupted run: 4 saves (one per epoch, then the final one) of 11 file
/// operations each, plus the plot and the output check, 61 points to kill it at.
const EPOCHS: &str = "4";

/// Trains `epochs` epochs into `out` (resuming `resume` when given) and fails unless it
/// succeeds (saying `when`).
fn train_ok(data: &Path, out: &Path, epochs: &str, resume: Option<&Path>, when: &str) {
    let mut flags = MODEL.to_vec();
    flags.extend(["--epochs", epochs]);
    if let Some(resume) = resume {
        flags.extend(["--resume", resume.to_str().unwrap()]);
    }
    let output = train(data, out, &flags);
    assert!(output.status.success(), "{when}: {}", text(&output));
}

/// Starts a training of `EPOCHS` epochs that pauses at its `operation`-th file operation, kills it there
/// with SIGKILL, and says whether it got that far (false: the run ended first).
fn kill_at(data: &Path, out: &Path, operation: usize) -> bool {
    let mut child = train_command(data, out, &[&MODEL[..], &["--epochs", EPOCHS]].concat())
        .env(dl_tensor::FAULT_PAUSE_VARIABLE, operation.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let paused = stderr
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("dl-fault: paused"));
    if paused {
        child.kill().unwrap(); // SIGKILL
    }
    child.wait().unwrap();
    paused
}

/// The data in `root`, and the checkpoint bytes of the uninterrupted run of `EPOCHS` epochs.
fn uninterrupted(root: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let data = synthetic_data(root);
    let whole = root.join("whole.safetensors");
    train_ok(&data, &whole, EPOCHS, None, "setup");
    let expected = std::fs::read(&whole).unwrap();
    (data, expected)
}

/// Trains to epoch `EPOCHS` into `resumed`, resuming `resume` when given, and fails (saying `when`)
/// unless that ends with the checkpoint bytes `expected`.
fn assert_resumes_to(
    data: &Path,
    resumed: &Path,
    resume: Option<&Path>,
    expected: &[u8],
    when: &str,
) {
    train_ok(data, resumed, EPOCHS, resume, when);
    assert!(
        std::fs::read(resumed).unwrap() == expected,
        "{when}: the resumed run's checkpoint differs from the uninterrupted one"
    );
}

#[test]
fn a_run_killed_at_any_file_operation_resumes_to_the_uninterrupted_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let (data, expected) = uninterrupted(root.path());

    let mut killed = 0;
    for operation in 1.. {
        let directory = root.path().join(format!("kill-{operation}"));
        let out = directory.join("model.safetensors");
        if !kill_at(&data, &out, operation) {
            break;
        }
        killed += 1;
        // Whatever the kill left is resumed (or, before the first commit, started again).
        let resumed = directory.join("resumed.safetensors");
        let resume = out.exists().then_some(out.as_path());
        let when = format!("killed at operation {operation}");
        assert_resumes_to(&data, &resumed, resume, &expected, &when);
        let leftovers: Vec<String> = std::fs::read_dir(&directory)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".resumed"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    assert!(killed >= 50, "only {killed} kill points");
}

#[test]
fn a_full_disk_leaves_the_previous_set_whole() {
    let root = tempfile::tempdir().unwrap();
    let (data, expected) = uninterrupted(root.path());

    // Epoch 1 saved whole, epoch 2 in place against a full disk, then on to the end from what
    // is left: with the files written one by one (the version before the run's files committed
    // together), 8 and 40 KiB left a history ahead of its weights or new weights beside the
    // previous optimizer state, and the epochs after differed. logreg's checkpoint is 31 KiB and
    // its optimizer state 63 KiB: each limit stops a different write of the second epoch's save.
    for limit_kib in [1, 8, 40, 70] {
        let directory = root.path().join(format!("limit-{limit_kib}"));
        let out = directory.join("model.safetensors");
        train_ok(&data, &out, "1", None, "setup");
        // The second epoch, in place, with files limited to `limit_kib` KiB (a write past it
        // fails with EFBIG, as on a full disk; SIGXFSZ is ignored so that it is an error).
        let script = format!("trap '' XFSZ; ulimit -f {limit_kib}; exec \"$0\" \"$@\"");
        let output = Command::new("bash")
            .args(["-c", &script, BINARY, "train", "--data-dir"])
            .arg(&data)
            .args([
                "--offline",
                "--batch-size",
                "20",
                "--epochs",
                "2",
                "--resume",
            ])
            .arg(&out)
            .arg("--out")
            .arg(&out)
            .args(MODEL)
            .env_remove("DL_DATA_DIR")
            .output()
            .unwrap();
        let log = text(&output);
        assert_eq!(output.status.code(), Some(1), "{limit_kib} KiB: {log}");
        assert!(!log.contains("panicked"), "{log}");
        assert!(
            log.contains("File too large") || log.contains("file too large"),
            "{limit_kib} KiB: {log}"
        );
        // The set the failed save leaves resumes to the uninterrupted run.
        let resumed = directory.join("resumed.safetensors");
        let when = format!("{limit_kib} KiB");
        assert_resumes_to(&data, &resumed, Some(&out), &expected, &when);
    }
}

#[test]
fn an_unwritable_output_fails_before_the_first_epoch() {
    let root = tempfile::tempdir().unwrap();
    let data = synthetic_data(root.path());
    let a_file = root.path().join("notes.txt");
    std::fs::write(&a_file, "my notes").unwrap();
    let output = train(&data, &a_file.join("model.safetensors"), &MODEL);
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("cannot write there"), "{log}");
    assert!(!log.contains("epoch 1/"), "it trained first: {log}");
    assert_eq!(std::fs::read_to_string(&a_file).unwrap(), "my notes");
}

#[test]
fn a_torn_set_is_refused_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    let data = synthetic_data(root.path());
    let first = root.path().join("first.safetensors");
    let second = root.path().join("second.safetensors");
    train_ok(&data, &first, "1", None, "setup");
    train_ok(&data, &second, "2", None, "setup");
    // The newer optimizer state beside the older weights: what separate writes could leave.
    std::fs::copy(
        root.path().join("second.optimizer.safetensors"),
        root.path().join("first.optimizer.safetensors"),
    )
    .unwrap();
    let output = train(
        &data,
        &root.path().join("third.safetensors"),
        &[
            &MODEL[..],
            &["--epochs", "3", "--resume", first.to_str().unwrap()],
        ]
        .concat(),
    );
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("first.optimizer.safetensors is not the file saved with it"),
        "{log}"
    );
}
