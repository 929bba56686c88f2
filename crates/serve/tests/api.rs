//! The HTTP API against a server on 127.0.0.1: answers equal the library's own computations,
//! every kind of bad request gets a JSON 4xx and the server goes on, and under load (2,000
//! requests from 16 clients) every request is answered.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Barrier},
    time::Duration,
};

use dl_compress::{Calibration, ClassifierFile, LoadedInt8Classifier, QuantizedModel};
use dl_data::{decode_digit, ImageDataset};
use dl_explain::{vanilla_gradient, IntegratedGradients};
use dl_models::{ImageModel, ImageRecipe, Loaded};
use dl_nn::{Layer, Mode, VarStore};
use dl_serve::{router, run_load_test, serve, Limits, LoadTest, ServedModel, ServerHandle, PIXELS};
use dl_tensor::{DType, Device, Tensor};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const RECIPE: ImageRecipe = ImageRecipe {
    model: ImageModel::CourseCnn,
    dropout: 0.0,
    dataset: ImageDataset::Mnist,
    widths: None,
};

/// The course CNN with seeded random weights, and its store (kept alive beside it).
fn course_cnn(seed: u64) -> (VarStore, dl_nn::Sequential) {
    let store = VarStore::new(&Device::Cpu, DType::F32, seed);
    let model = RECIPE.build(&store).unwrap();
    (store, model)
}

fn float_classifier(seed: u64) -> ClassifierFile {
    let (_store, model) = course_cnn(seed);
    ClassifierFile::Float(Loaded {
        model,
        recipe: RECIPE,
        metadata: BTreeMap::new(),
    })
}

/// A running server and the means to stop it.
struct Running {
    address: SocketAddr,
    handle: ServerHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

fn start(classifier: ClassifierFile, limits: Limits) -> Running {
    let (app, handle) = router(ServedModel::new(classifier, Device::Cpu), limits);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (bound, address) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            bound.send(listener.local_addr().unwrap()).unwrap();
            serve(listener, app, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
    });
    Running {
        address: address.recv().unwrap(),
        handle,
        stop: Some(stop),
        thread: Some(thread),
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// POSTs `body` as `content_type` and returns the status and the parsed JSON answer.
fn post(agent: &ureq::Agent, url: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let mut response = agent
        .post(url)
        .header("Content-Type", content_type)
        .send(body)
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

/// A 140 x 140 PNG or JPEG of a dark "7" on white, as a person might upload.
fn seven(format: image::ImageFormat) -> Vec<u8> {
    let mut picture = image::GrayImage::from_pixel(140, 140, image::Luma([255]));
    for x in 30..110 {
        for thickness in 0..10 {
            picture.put_pixel(x, 25 + thickness, image::Luma([20]));
        }
    }
    for step in 0..90 {
        let (x, y) = (105 - step * 45 / 90, 30 + step);
        for thickness in 0..10 {
            picture.put_pixel(x + thickness - 5, y, image::Luma([20]));
        }
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|number| number.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn predictions_equal_the_model_on_the_same_prepared_image() -> TestResult {
    let server = start(float_classifier(1), Limits::default());
    let (_store, model) = course_cnn(1);
    let agent = agent();
    let png = seven(image::ImageFormat::Png);
    let jpeg = seven(image::ImageFormat::Jpeg);
    let prepared = decode_digit(&png, "seven.png".as_ref())?;
    let raw: Vec<u8> = prepared
        .iter()
        .map(|&value| (value * 255.0).round() as u8)
        .collect();
    let json = serde_json::to_vec(&serde_json::json!({ "pixels": prepared }))?;
    for (content_type, body, image) in [
        ("image/png", png.clone(), prepared.clone()),
        (
            "image/jpeg",
            jpeg.clone(),
            decode_digit(&jpeg, "seven.jpg".as_ref())?,
        ),
        (
            "application/octet-stream",
            raw.clone(),
            raw.iter().map(|&byte| f32::from(byte) / 255.0).collect(),
        ),
        ("application/json", json, prepared.clone()),
    ] {
        let (status, answer) = post(&agent, &server.url("/api/predict"), content_type, &body);
        assert_eq!(status, 200, "{content_type}: {answer}");
        let batch = Tensor::from_vec(image, (1, 1, 28, 28), &Device::Cpu)?;
        let expected: Vec<f32> = dl_nn::softmax(&model.forward(&batch, Mode::Eval)?)?
            .flatten_all()?
            .to_vec1()?;
        let probabilities = floats(&answer["probabilities"]);
        assert_eq!(probabilities.len(), 10);
        for (got, want) in probabilities.iter().zip(&expected) {
            assert!((got - want).abs() < 1e-6, "{content_type}: {got} vs {want}");
        }
        let best = (0..10)
            .max_by(|&a, &b| expected[a].total_cmp(&expected[b]))
            .unwrap();
        assert_eq!(answer["class"], best, "{content_type}");
        assert_eq!(answer["name"], best.to_string());
        let top = answer["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert_eq!(top[0]["class"], best);
        assert!(top[0]["probability"].as_f64() >= top[1]["probability"].as_f64());
        assert!(top[1]["probability"].as_f64() >= top[2]["probability"].as_f64());
    }
    let info: Value = serde_json::from_str(
        &agent
            .get(server.url("/api/info"))
            .call()?
            .body_mut()
            .read_to_string()?,
    )?;
    assert_eq!(info["model"], "course-cnn");
    assert_eq!(info["precision"], "float");
    assert_eq!(info["methods"].as_array().unwrap().len(), 6);
    let page = agent
        .get(server.url("/"))
        .call()?
        .body_mut()
        .read_to_string()?;
    assert!(page.contains("<canvas id=\"pad\"") && page.contains("/api/explain"));
    assert_eq!(server.handle.answered(), 4);
    Ok(())
}

#[test]
fn explanations_equal_the_library_and_every_method_answers() -> TestResult {
    let server = start(float_classifier(2), Limits::default());
    let (_store, model) = course_cnn(2);
    let agent = agent();
    let png = seven(image::ImageFormat::Png);
    let prepared = decode_digit(&png, "seven.png".as_ref())?;
    let batch = Tensor::from_vec(prepared.clone(), (1, 1, 28, 28), &Device::Cpu)?;
    for method in [
        "saliency",
        "gradxinput",
        "smoothgrad",
        "ig",
        "gradcam",
        "occlusion",
    ] {
        let url = server.url(&format!("/api/explain?method={method}&target=3"));
        let (status, answer) = post(&agent, &url, "image/png", &png);
        assert_eq!(status, 200, "{method}: {answer}");
        assert_eq!(answer["method"], method);
        assert_eq!(answer["explained_class"], 3);
        assert_eq!(floats(&answer["input"]), prepared, "{method}");
        let attribution = floats(&answer["attribution"]);
        let display = floats(&answer["display"]);
        assert_eq!((attribution.len(), display.len()), (PIXELS, PIXELS));
        assert!(display.iter().all(|value| (0.0..=1.0).contains(value)));
        assert!(attribution.iter().any(|&value| value != 0.0), "{method}");
        match method {
            "saliency" => {
                let expected: Vec<f32> = vanilla_gradient(&model, &batch, &[3])?
                    .flatten_all()?
                    .to_vec1()?;
                assert_eq!(attribution, expected);
            }
            "ig" => {
                let expected = IntegratedGradients::default().attribute(&model, &batch, &[3])?;
                let error = answer["completeness_error"].as_f64().unwrap() as f32;
                assert!((error - expected.completeness_error[0]).abs() < 1e-6);
            }
            _ => assert!(answer.get("completeness_error").is_none(), "{method}"),
        }
    }
    // without a target the predicted class is explained, with saliency by default
    let (status, answer) = post(&agent, &server.url("/api/explain"), "image/png", &png);
    assert_eq!(status, 200);
    assert_eq!(answer["method"], "saliency");
    assert_eq!(answer["explained_class"], answer["class"]);
    Ok(())
}

#[test]
fn bad_requests_get_a_json_4xx_and_the_server_goes_on() -> TestResult {
    let limits = Limits {
        max_body_bytes: 64 << 10,
        ..Limits::default()
    };
    let server = start(float_classifier(3), limits);
    let agent = agent();
    let png = seven(image::ImageFormat::Png);
    let predict = server.url("/api/predict");
    let explain = |query: &str| server.url(&format!("/api/explain?{query}"));
    let huge = vec![7u8; 200 << 10];
    let cases: Vec<(String, &str, Vec<u8>, u16, &str)> = vec![
        (
            predict.clone(),
            "image/png",
            huge,
            413,
            "limit of 65536 bytes",
        ),
        (predict.clone(), "text/plain", png.clone(), 415, "image/png"),
        (
            predict.clone(),
            "image/png",
            b"GIF89a not a png".to_vec(),
            400,
            "uploaded image",
        ),
        (predict.clone(), "image/png", Vec::new(), 400, "empty"),
        (
            predict.clone(),
            "application/octet-stream",
            vec![0; 783],
            400,
            "784 bytes",
        ),
        (
            predict.clone(),
            "application/json",
            b"{\"pixels\": 3}".to_vec(),
            400,
            "pixels",
        ),
        (
            explain("method=guided-backprop"),
            "image/png",
            png.clone(),
            400,
            "unknown method",
        ),
        (
            explain("target=10"),
            "image/png",
            png.clone(),
            400,
            "10 classes",
        ),
        (
            explain("target=seven"),
            "image/png",
            png.clone(),
            400,
            "target",
        ),
        (
            explain("colour=red"),
            "image/png",
            png.clone(),
            400,
            "unknown field",
        ),
        (
            server.url("/api/nothing"),
            "image/png",
            png.clone(),
            404,
            "nothing at /api/nothing",
        ),
        (
            server.url("/api/info"),
            "image/png",
            png.clone(),
            405,
            "use GET",
        ),
    ];
    for (url, content_type, body, status, expected) in cases {
        let (got, answer) = post(&agent, &url, content_type, &body);
        assert_eq!(got, status, "{url} {content_type}: {answer}");
        assert_eq!(answer["status"], status);
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(expected), "{url}: {message}");
    }
    let mut response = agent.get(server.url("/api/predict")).call()?;
    assert_eq!(response.status().as_u16(), 405);
    let answer: Value = serde_json::from_str(&response.body_mut().read_to_string()?)?;
    assert!(
        answer["error"].as_str().unwrap().contains("use POST"),
        "{answer}"
    );
    // and the server still serves
    let (status, _) = post(&agent, &predict, "image/png", &png);
    assert_eq!(status, 200);
    Ok(())
}

#[test]
fn an_int8_model_predicts_but_cannot_explain() -> TestResult {
    let (_store, model) = course_cnn(4);
    let calibration = Tensor::rand(0f32, 1.0, (16, 1, 28, 28), &Device::Cpu)?;
    let quantized = QuantizedModel::calibrate(&model, &calibration, Calibration::MinMax)?;
    let server = start(
        ClassifierFile::Int8(LoadedInt8Classifier {
            model: quantized,
            recipe: RECIPE,
            metadata: BTreeMap::new(),
        }),
        Limits::default(),
    );
    let agent = agent();
    let png = seven(image::ImageFormat::Png);
    let (status, answer) = post(&agent, &server.url("/api/predict"), "image/png", &png);
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(&agent, &server.url("/api/explain"), "image/png", &png);
    assert_eq!(status, 422);
    assert!(
        answer["error"].as_str().unwrap().contains("int8"),
        "{answer}"
    );
    Ok(())
}

#[test]
fn an_overloaded_server_answers_503_at_once_instead_of_queueing_forever() -> TestResult {
    let limits = Limits {
        max_requests: 1,
        workers: 1,
        ..Limits::default()
    };
    let server = Arc::new(start(float_classifier(5), limits));
    let png = Arc::new(seven(image::ImageFormat::Png));
    let clients = 8;
    let barrier = Arc::new(Barrier::new(clients));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (server, png, barrier) =
                (Arc::clone(&server), Arc::clone(&png), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let agent = agent();
                barrier.wait();
                post(
                    &agent,
                    &server.url("/api/explain?method=smoothgrad"),
                    "image/png",
                    &png,
                )
            })
        })
        .collect();
    let answers: Vec<(u16, Value)> = threads
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    let served = answers.iter().filter(|(status, _)| *status == 200).count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 503)
        .collect();
    assert_eq!(served + refused.len(), clients, "{answers:?}");
    assert!(
        served >= 1 && !refused.is_empty(),
        "{served} served, {} refused",
        refused.len()
    );
    assert!(refused[0].1["error"].as_str().unwrap().contains("busy"));
    Ok(())
}

#[test]
fn a_load_of_2000_requests_from_16_clients_is_answered_in_full() -> TestResult {
    let server = start(float_classifier(6), Limits::default());
    let report = run_load_test(&LoadTest {
        url: server.url("/api/predict"),
        content_type: "image/png".into(),
        body: seven(image::ImageFormat::Png),
        requests: 2000,
        clients: 16,
    });
    println!("load test, 16 clients: {report}");
    assert_eq!((report.count(200), report.lost), (2000, 0), "{report}");
    assert_eq!(server.handle.answered(), 2000);
    assert!(report.p50 <= report.p99 && report.requests_per_second > 0.0);
    Ok(())
}
