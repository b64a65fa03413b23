//! The secret scan of one added line: known token formats, URLs with a password, values
//! assigned to secret-looking names, and high-entropy tokens, in that order. A line yields at
//! most one hit, the first rule that fires.
//!
//! A hit carries the secret's text so that the caller can measure it; only [`Hit::redacted`]
//! may ever reach a message.

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// What kind of secret a line holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    PrivateKey,
    Anthropic,
    OpenAi,
    GitHub,
    GitLab,
    SlackWebhook,
    Slack,
    Stripe,
    Google,
    Aws,
    Kamachiq,
    Jwt,
    UrlPassword,
    Assignment,
    HighEntropy,
}

impl Kind {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Kind::PrivateKey => "private key block",
            Kind::Anthropic => "Anthropic API key",
            Kind::OpenAi => "OpenAI API key",
            Kind::GitHub => "GitHub token",
            Kind::GitLab => "GitLab personal access token",
            Kind::SlackWebhook => "Slack webhook URL",
            Kind::Slack => "Slack token",
            Kind::Stripe => "Stripe live key",
            Kind::Google => "Google API key",
            Kind::Aws => "AWS access key id",
            Kind::Kamachiq => "kamachiq API token",
            Kind::Jwt => "JSON web token",
            Kind::UrlPassword => "password in a URL",
            Kind::Assignment => "value assigned to",
            Kind::HighEntropy => "high-entropy string",
        }
    }
}

/// A secret found in a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hit<'a> {
    pub(crate) kind: Kind,
    /// The secret itself: never to be printed.
    pub(crate) secret: &'a str,
    /// For [`Kind::Assignment`], the name the value is assigned to.
    pub(crate) name: Option<&'a str>,
}

impl Hit<'_> {
    /// What the secret is, e.g. "GitHub token" or "value assigned to `DB_PASSWORD`".
    pub(crate) fn what(&self) -> String {
        match self.name {
            Some(name) => format!("{} `{name}`", self.kind.describe()),
            None => self.kind.describe().to_owned(),
        }
    }

    /// The secret as a message may show it: its first characters (a quarter of it, at most 4)
    /// followed by `…` and its length, e.g. "ghp_…, 40 characters".
    pub(crate) fn redacted(&self) -> String {
        let length = self.secret.chars().count();
        let shown: String = self.secret.chars().take((length / 4).min(4)).collect();
        format!("{shown}…, {length} characters")
    }
}

/// What the scan needs to know about the file a line is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FileKind {
    /// Program source: a bare (unquoted) value after `=` is an expression there, not a literal.
    pub(crate) code: bool,
    /// A package manager's lock file: full of content hashes, so the entropy rule is off.
    pub(crate) lock: bool,
}

impl FileKind {
    pub(crate) fn of(path: &str) -> Self {
        let name = path.rsplit('/').next().unwrap_or(path);
        let extension = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        Self {
            code: CODE_EXTENSIONS.contains(&extension.as_str()),
            lock: LOCK_FILES.contains(&name),
        }
    }
}

/// Extensions of program source files.
const CODE_EXTENSIONS: &[&str] = &[
    "rs", "py", "pyi", "js", "mjs", "cjs", "jsx", "ts", "mts", "cts", "tsx", "go", "java", "kt",
    "kts", "scala", "groovy", "rb", "php", "c", "h", "cc", "cpp", "cxx", "hpp", "hh", "cs", "fs",
    "swift", "m", "mm", "dart", "lua", "ex", "exs", "erl", "hrl", "hs", "ml", "mli", "clj", "cljs",
    "elm", "vue", "svelte", "zig", "nim", "jl", "pl", "pm",
];

/// Lock files of package managers.
const LOCK_FILES: &[&str] = &[
    "Cargo.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lock",
    "poetry.lock",
    "Pipfile.lock",
    "uv.lock",
    "pdm.lock",
    "go.sum",
    "Gemfile.lock",
    "composer.lock",
    "flake.lock",
    "mix.lock",
    "pubspec.lock",
    "Package.resolved",
    "packages.lock.json",
    "gradle.lockfile",
];

/// The known token formats, most specific first. In each, group 1 is the secret; for URLs,
/// group 2 is the host.
const KNOWN: &[(Kind, &str)] = &[
    (
        Kind::PrivateKey,
        r"(-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)",
    ),
    (Kind::Anthropic, r"(?-u:\b)(sk-ant-[A-Za-z0-9_-]{32,})"),
    (
        Kind::OpenAi,
        r"(?-u:\b)(sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,})",
    ),
    (
        Kind::GitHub,
        r"(?-u:\b)(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})",
    ),
    (Kind::GitLab, r"(?-u:\b)(glpat-[A-Za-z0-9_-]{20,})"),
    (
        Kind::SlackWebhook,
        r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,})",
    ),
    (Kind::Slack, r"(?-u:\b)(xox[abprs]-[A-Za-z0-9-]{10,})"),
    (Kind::Stripe, r"(?-u:\b)([rs]k_live_[A-Za-z0-9]{20,})"),
    (
        Kind::Google,
        r"(?-u:\b)(AIza[A-Za-z0-9_-]{35})(?:[^A-Za-z0-9_-]|$)",
    ),
    (Kind::Aws, r"(?-u:\b)((?:AKIA|ASIA)[A-Z0-9]{16})(?-u:\b)"),
    (Kind::Kamachiq, r"(?-u:\b)(kq_[0-9a-f]{64})(?-u:\b)"),
    (
        Kind::Jwt,
        r"(?-u:\b)(eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})",
    ),
    (
        Kind::UrlPassword,
        r#"[A-Za-z][A-Za-z0-9+.-]*://[^ \t/:@"'`]*:([^ \t/@"'`]+)@([A-Za-z0-9.-]+|\[)"#,
    ),
];

/// A name, `=`, `:`, `:=` or `=>`, and a double-quoted, single-quoted or bare value. The name
/// must hold one of the words below; [`secret_name`] decides whether it is a secret's name.
/// A type annotation may stand between the name and `=` (`const API_KEY: &str = "..."`).
const ASSIGNMENT: &str = concat!(
    r#"([A-Za-z0-9_.-]*(?i-u:pass|secret|token|key)[A-Za-z0-9_.-]*)["']?[ \t]*"#,
    r"(?::[ \t]*&?(?:'static[ \t]+)?[A-Za-z_][A-Za-z0-9_<>:&]*[ \t]*)?",
    r"(?:=>|:=|=|:)[ \t]*",
    r#"(?:"([^"]*)"|'([^']*)'|([^ \t"'`,;=][^ \t"'`,;]*))"#,
);

/// String literals, whose content is searched for high-entropy tokens.
const LITERAL: &str = r#""([^"]*)"|'([^']*)'|`([^`]*)`"#;

/// A base64- or hex-like token: what the entropy rule measures.
const TOKEN: &str = r"[A-Za-z0-9+/_-]{20,}={0,2}";

/// A token right after `=` or `:`, outside any literal.
const BARE_TOKEN: &str = r"([=:])[ \t]*([A-Za-z0-9+/_-]{20,}={0,2})";

const UUID: &str = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

struct Patterns {
    known_set: RegexSet,
    known: Vec<(Kind, Regex)>,
    assignment: Regex,
    literal: Regex,
    token: Regex,
    bare_token: Regex,
    uuid: Regex,
}

impl Patterns {
    fn build() -> Result<Self, regex::Error> {
        Ok(Self {
            known_set: RegexSet::new(KNOWN.iter().map(|(_, p)| p))?,
            known: KNOWN
                .iter()
                .map(|(kind, p)| Regex::new(p).map(|r| (*kind, r)))
                .collect::<Result<_, _>>()?,
            assignment: Regex::new(ASSIGNMENT)?,
            literal: Regex::new(LITERAL)?,
            token: Regex::new(TOKEN)?,
            bare_token: Regex::new(BARE_TOKEN)?,
            uuid: Regex::new(UUID)?,
        })
    }
}

#[allow(clippy::expect_used)]
static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    Patterns::build()
        .expect("the built-in secret patterns are valid regexes (a unit test builds them)")
});

/// Scans one added line; `threshold` is the entropy threshold in bits per character.
pub(crate) fn scan(line: &str, file: FileKind, threshold: f64) -> Option<Hit<'_>> {
    known(line).or_else(|| assignment(line, file)).or_else(|| {
        if file.lock {
            None
        } else {
            high_entropy(line, file, threshold)
        }
    })
}

fn known(line: &str) -> Option<Hit<'_>> {
    let patterns = &*PATTERNS;
    for index in patterns.known_set.matches(line).iter() {
        let Some((kind, regex)) = patterns.known.get(index) else {
            continue;
        };
        for captures in regex.captures_iter(line) {
            let Some(secret) = captures.get(1).map(|m| m.as_str()) else {
                continue;
            };
            let host = captures.get(2).map_or("", |m| m.as_str());
            if plausible(*kind, secret) && !documentation_host(host) {
                return Some(Hit {
                    kind: *kind,
                    secret,
                    name: None,
                });
            }
        }
    }
    None
}

/// Whether a match of a known format looks real rather than like documentation.
fn plausible(kind: Kind, secret: &str) -> bool {
    match kind {
        Kind::PrivateKey => true,
        Kind::UrlPassword => !placeholder(secret),
        Kind::OpenAi => {
            !secret.starts_with("sk-ant-")
                && mixed(secret.get(3..).unwrap_or_default())
                && !placeholder(secret)
        }
        // Real Slack tokens carry the workspace's and the user's numeric ids.
        Kind::Slack => {
            secret.bytes().filter(u8::is_ascii_digit).count() >= 8 && !placeholder(secret)
        }
        _ => !placeholder(secret),
    }
}

/// Whether `host` is reserved for documentation and tests (RFC 2606): `example.com`,
/// `example.org`, `example.net` and names under them, and names ending in `.example`, `.test`
/// or `.invalid`. A URL's password for such a host is made up.
fn documentation_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    ["example.com", "example.org", "example.net"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
        || [".example", ".test", ".invalid"]
            .iter()
            .any(|tld| host.ends_with(tld))
}

/// Whether `text` has an upper-case letter, a lower-case letter and a digit, as random tokens of
/// 20 or more base64 characters almost always do and words and identifiers rarely do.
fn mixed(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_uppercase())
        && text.bytes().any(|b| b.is_ascii_lowercase())
        && text.bytes().any(|b| b.is_ascii_digit())
}

fn assignment(line: &str, file: FileKind) -> Option<Hit<'_>> {
    for captures in PATTERNS.assignment.captures_iter(line) {
        let Some(whole_name) = captures.get(1) else {
            continue;
        };
        let name = whole_name.as_str();
        // `Kind::ApiToken => "api_token"` names an enum variant; it assigns nothing.
        if !secret_name(name) || line[..whole_name.start()].ends_with("::") {
            continue;
        }
        let quoted = captures
            .get(2)
            .or_else(|| captures.get(3))
            .map(|m| m.as_str());
        let secret = match (quoted, captures.get(4).map(|m| m.as_str())) {
            (Some(value), _) if quoted_secret(value) => value,
            (None, Some(value)) if !file.code && bare_secret(value) => value,
            _ => continue,
        };
        return Some(Hit {
            kind: Kind::Assignment,
            secret,
            name: Some(name),
        });
    }
    None
}

/// Whether a name says its value is a secret: its last word is one of `password`, `passwd`,
/// `passphrase`, `pass`, `secret`, `token`, `apikey`, or it ends in `key` after `api`,
/// `access`, `secret`, `private`, `auth`, `signing`, `encryption`, `master` or `client`. So
/// `DB_PASSWORD`, `apiKey`, `aws_secret_access_key` and `github-token` are, and `token_type`,
/// `secret_name`, `max_tokens` and `primary_key` are not.
fn secret_name(name: &str) -> bool {
    let words = words(name);
    let mut last_two = words.iter().rev();
    let last = last_two.next().map(String::as_str);
    let before = last_two.next().map(String::as_str);
    match last {
        Some("password" | "passwd" | "passphrase" | "pass" | "secret" | "token" | "apikey") => true,
        Some("key") => matches!(
            before,
            Some(
                "api"
                    | "access"
                    | "secret"
                    | "private"
                    | "auth"
                    | "signing"
                    | "encryption"
                    | "master"
                    | "client"
            )
        ),
        _ => false,
    }
}

/// The lower-cased words of an identifier: split at `_`, `-`, `.` and lower-to-upper case
/// changes (`apiKey` → `api`, `key`).
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            previous_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && previous_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A quoted value is a secret when it has 8 or more characters, a letter and a digit (words
/// and labels such as `"coalesce"` or `"mysql_native_password"` are not secrets), no spaces
/// (prose is not a password) and is not a placeholder.
fn quoted_secret(value: &str) -> bool {
    value.chars().count() >= 8
        && value.bytes().any(|b| b.is_ascii_alphabetic())
        && value.bytes().any(|b| b.is_ascii_digit())
        && !value.chars().any(char::is_whitespace)
        && !placeholder(value)
}

/// A bare value (configuration files only) is a secret when it would be one quoted, and does
/// not look like a path, a YAML tag, anchor or alias, or a call (`Token(0)`).
fn bare_secret(value: &str) -> bool {
    quoted_secret(value)
        && !value.starts_with(['/', '.', '~', '!', '&', '*'])
        && !value.contains(['(', ')', '[', ']'])
}

/// Words that mark a value as a stand-in, compared lower-cased.
const PLACEHOLDER_WORDS: &[&str] = &[
    "example",
    "changeme",
    "change_me",
    "change-me",
    "changeit",
    "placeholder",
    "dummy",
    "redacted",
    "replace",
    "your_",
    "your-",
    "yourpass",
    "xxxx",
    "****",
    // A value that names what it stands for (`my-secret-1`, `CLIENT_TRAFFIC_SECRET_0`).
    "password",
    "passwd",
    "secret",
    "token",
    "...",
];

/// Fragments of templates and references to a secret kept elsewhere.
const INDIRECTIONS: &[&str] = &[
    "${",
    "{{",
    "%(",
    "$(",
    "#{",
    "<",
    ">",
    "os.environ",
    "process.env",
    "getenv",
    "env(",
    "env[",
    "env.",
    "secrets.",
    "vault:",
];

/// Whole values that name a secret rather than being one.
const STAND_INS: &[&str] = &[
    "pass",
    "apikey",
    "api_key",
    "user",
    "username",
    "null",
    "none",
    "nil",
    "undefined",
    "true",
    "false",
    "empty",
    "string",
];

/// Whether `value` is an obvious placeholder: a template (`${VAR}`, `{{ x }}`, `{name}`,
/// `<token>`), a reference (`$VAR`, `os.environ[...]`, `process.env.X`), a stand-in word
/// (`changeme`, `your_token`, `xxxx`, `example`), fewer than 4 distinct characters
/// (`aaaaaaaa`) or mostly runs of consecutive characters (`abcd1234`, an alphabet).
fn placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    if lower.starts_with('$') || lower.starts_with('%') {
        return true;
    }
    if lower.contains('{') && lower.contains('}') {
        return true;
    }
    if sequential(value) {
        return true;
    }
    if PLACEHOLDER_WORDS.iter().any(|w| lower.contains(w))
        || INDIRECTIONS.iter().any(|w| lower.contains(w))
        || STAND_INS.contains(&lower.as_str())
    {
        return true;
    }
    let mut distinct: Vec<char> = lower.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len() < 4
}

/// Whether more than half of the neighbouring characters of `value` are consecutive
/// (`b` after `a`, `5` after `4`), as in `abcdefgh`, `12345678` or a whole alphabet. In a random
/// base64 token about one pair in 64 is.
fn sequential(value: &str) -> bool {
    let bytes = value.as_bytes();
    let pairs = bytes.len().saturating_sub(1);
    let consecutive = bytes
        .windows(2)
        .filter(|w| w[0].checked_add(1) == Some(w[1]))
        .count();
    pairs > 0 && consecutive * 2 > pairs
}

fn high_entropy(line: &str, file: FileKind, threshold: f64) -> Option<Hit<'_>> {
    let patterns = &*PATTERNS;
    for captures in patterns.literal.captures_iter(line) {
        let Some(content) = (1..=3).find_map(|i| captures.get(i)) else {
            continue;
        };
        for token in patterns.token.find_iter(content.as_str()) {
            let before = &line[..content.start() + token.start()];
            if let Some(hit) = entropy_hit(token.as_str(), before, threshold) {
                return Some(hit);
            }
        }
    }
    // In program source a bare token after `=` or `:` is an identifier, not a literal.
    if file.code {
        return None;
    }
    for captures in patterns.bare_token.captures_iter(line) {
        let (Some(separator), Some(token)) = (captures.get(1), captures.get(2)) else {
            continue;
        };
        // `::` separates path segments (`crate::Type`); it assigns nothing.
        if line[..separator.start()].ends_with(':') || line[token.end()..].starts_with(':') {
            continue;
        }
        if let Some(hit) = entropy_hit(token.as_str(), &line[..token.start()], threshold) {
            return Some(hit);
        }
    }
    None
}

/// Lengths of hex digests that are content hashes, not secrets: SHA-1 (git object ids),
/// SHA-256, SHA-384 and SHA-512.
const DIGEST_LENGTHS: &[usize] = &[40, 64, 96, 128];

/// Prefixes of subresource-integrity hashes (`integrity` in npm, yarn and pnpm lock files and
/// in HTML): public content hashes.
const INTEGRITY_PREFIXES: &[&str] = &["sha1-", "sha256-", "sha384-", "sha512-"];

fn entropy_hit<'a>(token: &'a str, before: &str, threshold: f64) -> Option<Hit<'a>> {
    if before.ends_with("base64,")
        || in_url(before)
        || INTEGRITY_PREFIXES.iter().any(|p| token.starts_with(p))
        || PATTERNS.uuid.is_match(token)
    {
        return None;
    }
    let length = token.len();
    let hex = token
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        || token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    if path_like(token) {
        return None;
    }
    let limit = if hex {
        let mut letters: Vec<u8> = token.bytes().filter(u8::is_ascii_alphabetic).collect();
        letters.sort_unstable();
        letters.dedup();
        let digits = token.bytes().any(|b| b.is_ascii_digit());
        // One letter only: a number such as `7976931348623157e308`, not a hex secret.
        if DIGEST_LENGTHS.contains(&length) || letters.len() < 2 || !digits || hex_text(token) {
            return None;
        }
        hex_threshold(threshold)
    } else {
        if !mixed(token) || mean_word_length(token) >= 3.0 {
            return None;
        }
        base64_threshold(threshold, length)
    };
    (shannon_entropy(token) > limit && !placeholder(token)).then_some(Hit {
        kind: Kind::HighEntropy,
        secret: token,
        name: None,
    })
}

/// Whether the text before a token ends inside a URL (`https://…?gist=`): ids in URLs are
/// addresses, not credentials. Passwords in URLs and known tokens are found by other rules.
fn in_url(before: &str) -> bool {
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '(' | '<'))
        .map_or(0, |(at, c)| at + c.len_utf8());
    before[start..].contains("://")
}

/// The mean length of the words of a token split at case changes, digits and other characters
/// (`Utf8CharsWithHandler` → `Utf`, `8`, `Chars`, `With`, `Handler`: 4.0). Identifiers and
/// names come out at 3 or more; random base64 at about 1.8, and at 3 or more in about one
/// token of 100 at 20 characters and almost never at 40.
fn mean_word_length(token: &str) -> f64 {
    let bytes = token.as_bytes();
    let run = |mut i: usize, class: fn(&u8) -> bool| {
        while bytes.get(i).is_some_and(class) {
            i += 1;
        }
        i
    };
    let (mut words, mut letters) = (0usize, 0usize);
    let mut i = 0;
    while let Some(b) = bytes.get(i) {
        let start = i;
        i = if b.is_ascii_digit() {
            run(i, u8::is_ascii_digit)
        } else if b.is_ascii_lowercase() {
            run(i, u8::is_ascii_lowercase)
        } else if b.is_ascii_uppercase() {
            let upper_end = run(i, u8::is_ascii_uppercase);
            let followed_by_lower = bytes.get(upper_end).is_some_and(u8::is_ascii_lowercase);
            match (followed_by_lower, upper_end - i) {
                // `Chars`: one capital and its lower-case letters.
                (true, 1) => run(upper_end, u8::is_ascii_lowercase),
                // `HTTPServer`: `HTTP`, then `Server` is the next word.
                (true, _) => upper_end - 1,
                (false, _) => upper_end,
            }
        } else {
            i += 1;
            continue;
        };
        words += 1;
        letters += i - start;
    }
    if words == 0 {
        0.0
    } else {
        letters as f64 / words as f64
    }
}

/// Whether a token with `/` in it reads as a path (`PORT/v1/plans/execute`,
/// `Authorization/roleDefinitions/<uuid>`): of its parts of 3 or more characters, at least
/// two, and at least half, are lower-case or read as words (see [`mean_word_length`]). The
/// parts of a random base64 token rarely are.
fn path_like(token: &str) -> bool {
    let parts: Vec<&str> = token.split('/').filter(|p| p.len() >= 3).collect();
    let words = parts
        .iter()
        .filter(|p| {
            p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
                || mean_word_length(p) >= 3.0
        })
        .count();
    token.contains('/') && words >= 2 && words * 2 >= parts.len()
}

/// Whether hex digits spell printable ASCII text (`48656c6c6f` is "Hello"): encoded text, as
/// in encoding examples, not a key. Random bytes are printable a little over a third of the
/// time, so a dozen in a row almost never are.
fn hex_text(token: &str) -> bool {
    let bytes = token.as_bytes();
    bytes.len().is_multiple_of(2)
        && bytes.chunks(2).all(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .is_some_and(|b| b == b' ' || b.is_ascii_graphic())
        })
}

/// Hex carries 4 bits per character where base64 carries 6, so hex tokens are held to two
/// thirds of the threshold (3.0 at the default 4.5).
fn hex_threshold(threshold: f64) -> f64 {
    threshold * 4.0 / 6.0
}

/// A string of n characters has at most log2(n) bits per character, so a token shorter than
/// 32 characters could never reach 4.5: below 32, the threshold is scaled by
/// (log2(n) − 0.5) / 4.5, which is 1 at 32 characters and 0.85 at 20.
fn base64_threshold(threshold: f64, length: usize) -> f64 {
    let bits = (length as f64).log2();
    threshold * ((bits - 0.5) / 4.5).min(1.0)
}

/// Shannon entropy of the characters of `text`, in bits per character.
pub(crate) fn shannon_entropy(text: &str) -> f64 {
    let mut counts = [0usize; 256];
    for b in text.bytes() {
        counts[usize::from(b)] += 1;
    }
    if text.is_empty() {
        return 0.0;
    }
    let total = text.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests;
