//! `serve` end to end: the binary on a free port of 127.0.0.1 answers the API with a model
//! trained here, Ctrl-C (SIGINT) stops it cleanly, and a port already taken is a clear error.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use common::{synthetic_data, synthetic_image, text, train, BINARY};

#[test]
fn serve_answers_the_api_and_stops_cleanly_on_ctrl_c() {
    let root = tempfile::tempdir().unwrap();
    let data = synthetic_data(root.path());
    let model = root.path().join("cnn.safetensors");
    let output = train(&data, &model, &["--model", "course-cnn", "--epochs", "2"]);
    assert!(output.status.success(), "{}", text(&output));

    let mut server = Command::new(BINARY)
        .args([
            "serve",
            "--port",
            "0",
            "--checkpoint",
            model.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    assert!(
        banner.starts_with("serving course-cnn (MNIST, float)"),
        "{banner}"
    );
    let url = banner
        .split_whitespace()
        .find(|word| word.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("{banner}"))
        .to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    // a test image of class 7 as raw MNIST bytes: the model trained on these must say 7
    let mut response = agent
        .post(format!("{url}api/predict"))
        .header("Content-Type", "application/octet-stream")
        .send(&synthetic_image(7, 12_345)[..])
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let answer: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(answer["class"], 7, "{answer}");
    let mut response = agent
        .post(format!("{url}api/explain?method=gradcam"))
        .header("Content-Type", "text/csv")
        .send("1,2,3")
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    assert!(response
        .body_mut()
        .read_to_string()
        .unwrap()
        .contains("\"error\""));

    let status = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.wait().unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(exit.success(), "{exit:?}: {rest:?}");
    assert_eq!(rest, ["stopped after answering 2 request(s)"]);
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let root = tempfile::tempdir().unwrap();
    let data = synthetic_data(root.path());
    let model = root.path().join("logreg.safetensors");
    let output = train(&data, &model, &["--model", "logreg", "--epochs", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    let output = Command::new(BINARY)
        .args([
            "serve",
            "--port",
            &port,
            "--checkpoint",
            model.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    common::assert_clear_failure(
        &output,
        &[&format!("cannot listen on 127.0.0.1:{port}"), "--port"],
    );
}
