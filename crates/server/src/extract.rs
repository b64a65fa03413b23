//! Request extractors whose failures are problem documents naming the bad field, instead of
//! axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body. Wrong types, unknown fields and malformed JSON are 422/400 with the path of
/// the field at fault; a body over the limit is 413.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T>
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON, with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = body(req, state).await?;
        parse_json(&bytes).map(Self)
    }
}

/// A JSON body that may be absent (empty): then `T::default()`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T>
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let has_type = req.headers().contains_key(CONTENT_TYPE);
        if has_type && !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON, with `Content-Type: application/json`, or send none".into(),
            ));
        }
        let bytes = body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        parse_json(&bytes).map(Self)
    }
}

/// The raw body, within the size limit.
pub async fn body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError>
where
    AppState: FromRef<S>,
{
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge {
                limit: AppState::from_ref(state).options().body_limit,
            }
        } else {
            ApiError::bad_request("unreadable_body", None, rejection.body_text())
        }
    })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"))
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(
                "malformed_json",
                None,
                format!("the body is not valid JSON: {inner}"),
            )
        } else {
            ApiError::Unprocessable {
                code: "invalid_body",
                field,
                detail: inner.to_string(),
            }
        }
    })?;
    deserializer.end().map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            None,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    Ok(value)
}

/// Query parameters; an unknown or ill-typed parameter is a 400 naming it.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Self)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                ApiError::bad_request(
                    "invalid_query",
                    (path != ".").then_some(path),
                    format!("invalid query string: {inner}"),
                )
            })
    }
}
