//! kamachiq-policy from the outside: the example policies, the JSON forms, replay.

mod examples;
mod json;
mod replay;
mod support;
