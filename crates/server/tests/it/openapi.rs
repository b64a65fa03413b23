//! The OpenAPI document: served as generated, and complete about errors.

use axum::http::StatusCode;

use crate::support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_the_generated_one() {
    let server = Server::start().await;
    let reply = server.get_anonymous("/v1/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.json(),
        serde_json::to_value(kamachiq_server::openapi()).unwrap()
    );
}

#[test]
fn every_protected_operation_documents_its_errors() {
    let doc = serde_json::to_value(kamachiq_server::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let statuses: Vec<&String> = operation["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} has no responses"))
                .keys()
                .collect();
            let open = ["/health", "/ready", "/v1/openapi.json"].contains(&path.as_str());
            let has_4xx = statuses.iter().any(|s| s.starts_with('4'));
            assert_eq!(has_4xx, !open, "{method} {path} documents {statuses:?}");
            if !open {
                assert!(
                    statuses.iter().any(|s| *s == "401"),
                    "{method} {path} needs a token but documents no 401: {statuses:?}"
                );
            }
        }
    }
    // Every route of the router is in the document.
    assert_eq!(operations, 63);
}
