//! `train --members K` and `ensemble` end to end on a small synthetic MNIST: the members' and the
//! ensemble's table, with the mean ensemble's NLL at most its members' mean (Jensen).

mod common;

use common::{assert_clear_failure, run, synthetic_data, text, train};

/// The number in column `column` (1-based, between bars) of the table row starting with `start`.
fn cell(table: &str, start: &str, column: usize) -> f64 {
    let row = table
        .lines()
        .find(|line| line.starts_with(start))
        .unwrap_or_else(|| panic!("no row {start}: {table}"));
    row.split('|')
        .nth(column)
        .unwrap()
        .trim()
        .trim_matches('*')
        .trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("{row}"))
}

#[test]
fn members_train_with_consecutive_seeds_and_combine() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let data = synthetic_data(dir);
    let out = dir.join("mlp.safetensors");
    let output = train(
        &data,
        &out,
        &[
            "--model",
            "mlp",
            "--epochs",
            "1",
            "--members",
            "3",
            "--seed",
            "5",
        ],
    );
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    for (member, seed) in [(1, 5), (2, 6), (3, 7)] {
        assert!(
            log.contains(&format!("member {member} of 3 (seed {seed})")),
            "{log}"
        );
        assert!(dir
            .join(format!("mlp-member-{member}.safetensors"))
            .exists());
    }
    assert!(log.contains("ensemble --checkpoint"), "{log}");
    let members: Vec<String> = (1..=3)
        .map(|member| {
            dir.join(format!("mlp-member-{member}.safetensors"))
                .display()
                .to_string()
        })
        .collect();
    let mut arguments = vec![
        "ensemble",
        "--offline",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    for member in &members {
        arguments.extend(["--checkpoint", member.as_str()]);
    }
    let output = run(&arguments);
    let table = text(&output);
    assert!(output.status.success(), "{table}");
    assert!(
        table.contains("3 members on the 100 test images of MNIST"),
        "{table}"
    );
    let mean_member_nll = cell(&table, "| mean member", 3);
    let ensemble_nll = cell(&table, "| **ensemble**", 3);
    assert!(ensemble_nll <= mean_member_nll + 1e-4, "{table}");
    assert!(table.contains("oracle accuracy"), "{table}");
    // --out bundles the members; evaluate then reads the ensemble's row from one file
    let bundle = dir.join("ensemble.safetensors");
    let output = run(&[&arguments[..], &["--out", bundle.to_str().unwrap()]].concat());
    assert!(output.status.success(), "{}", text(&output));
    let output = run(&[
        "evaluate",
        "--offline",
        "--data-dir",
        data.to_str().unwrap(),
        "--checkpoint",
        bundle.to_str().unwrap(),
    ]);
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("(ensemble, mean of 3: mlp, mlp, mlp, float)"),
        "{log}"
    );
    assert!(log.contains("member 2: mlp-member-2.safetensors"), "{log}");
    let accuracy = cell(&table, "| **ensemble**", 2);
    assert!(
        log.contains(&format!("test accuracy {accuracy:.2}%")),
        "{log}\n{table}"
    );
    assert!(
        log.contains(&format!("test loss {ensemble_nll:.4}")),
        "{log}\n{table}"
    );
    let output = run(&[
        "predict",
        "--offline",
        "--data-dir",
        data.to_str().unwrap(),
        "--checkpoint",
        bundle.to_str().unwrap(),
        "--index",
        "3",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    // a command that changes one model names the bundle and says what takes it
    let output = run(&[
        "explain",
        "--offline",
        "--data-dir",
        data.to_str().unwrap(),
        "--checkpoint",
        bundle.to_str().unwrap(),
        "--index",
        "3",
    ]);
    assert_clear_failure(&output, &["ensemble bundle", "evaluate, predict"]);
    arguments.extend(["--method", "vote"]);
    let output = run(&arguments);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("majority vote"));
    // test-time augmentation, in evaluate and predict
    let data_dir = data.to_str().unwrap();
    let output = run(&[
        "evaluate",
        "--offline",
        "--data-dir",
        data_dir,
        "--checkpoint",
        &members[0],
        "--tta",
    ]);
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("its four one-pixel shifts (--tta)") && log.contains("test accuracy"),
        "{log}"
    );
    let output = run(&[
        "predict",
        "--offline",
        "--data-dir",
        data_dir,
        "--checkpoint",
        &members[0],
        "--tta",
        "--index",
        "3",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).starts_with("test image 3 (label 3): "),
        "{}",
        text(&output)
    );
    let output = run(&[
        "ensemble",
        "--offline",
        "--data-dir",
        data.to_str().unwrap(),
        "--checkpoint",
        &members[0],
    ]);
    assert_clear_failure(&output, &["at least two --checkpoint"]);
}
