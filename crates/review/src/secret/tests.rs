use super::*;
use crate::fake::{ALNUM, BASE64, BASE64URL, DIGITS, HEX, UPPER_DIGITS, random, token};

const CODE: FileKind = FileKind {
    code: true,
    lock: false,
};
const CONFIG: FileKind = FileKind {
    code: false,
    lock: false,
};
const LOCK: FileKind = FileKind {
    code: false,
    lock: true,
};

fn hit(line: &str, file: FileKind) -> Option<(Kind, String)> {
    scan(line, file, 4.5).map(|h| (h.kind, h.secret.to_owned()))
}

/// Asserts that `line` yields `kind` with exactly `secret` as the secret.
fn assert_hit(line: &str, file: FileKind, kind: Kind, secret: &str) {
    assert_eq!(
        hit(line, file),
        Some((kind, secret.to_owned())),
        "line: {line}"
    );
}

fn assert_clean(line: &str, file: FileKind) {
    assert_eq!(hit(line, file), None, "line: {line}");
}

#[test]
fn the_built_in_patterns_compile() {
    assert!(Patterns::build().is_ok());
}

#[test]
fn aws_access_key_ids() {
    for (prefix, seed) in [["AK", "IA"], ["AS", "IA"]].iter().zip(1..) {
        let key = token(prefix, UPPER_DIGITS, 16, seed);
        assert_hit(&format!("let id = \"{key}\";"), CODE, Kind::Aws, &key);
    }
}

#[test]
fn aws_keys_need_exactly_sixteen_characters() {
    let long = token(&["AK", "IA"], UPPER_DIGITS, 17, 3);
    assert_eq!(hit(&format!("id {long} end"), CONFIG), None);
}

#[test]
fn aws_documentation_examples_are_skipped() {
    let example = ["AKIA", "IOSFODNN7", "EXAMPLE"].concat();
    assert_clean(&format!("aws_access_key_id = {example}"), CONFIG);
}

#[test]
fn github_tokens() {
    for (prefix, seed) in ["p_", "o_", "u_", "s_", "r_"].into_iter().zip(10..) {
        let secret = token(&["gh", prefix], ALNUM, 36, seed);
        assert_hit(
            &format!("auth: token {secret}"),
            CONFIG,
            Kind::GitHub,
            &secret,
        );
    }
    let fine_grained = token(&["github", "_pat_"], ALNUM, 22, 20) + "_" + &random(ALNUM, 59, 21);
    assert_hit(
        &format!("GH={fine_grained}"),
        CONFIG,
        Kind::GitHub,
        &fine_grained,
    );
}

#[test]
fn gitlab_tokens() {
    let secret = token(&["gl", "pat-"], BASE64URL, 20, 30);
    assert_hit(
        &format!("curl -H 'PRIVATE-TOKEN: {secret}'"),
        CONFIG,
        Kind::GitLab,
        &secret,
    );
}

#[test]
fn slack_tokens() {
    for (prefix, seed) in ["b-", "p-", "a-", "r-", "s-"].into_iter().zip(40..) {
        let secret = token(&["xo", "x", prefix], DIGITS, 11, seed)
            + "-"
            + &random(DIGITS, 12, seed + 100)
            + "-"
            + &random(ALNUM, 24, seed + 200);
        assert_hit(&format!("slack({secret})"), CODE, Kind::Slack, &secret);
    }
}

#[test]
fn slack_placeholders_without_ids_are_skipped() {
    assert_clean(&["xo", "xb-your-bot-token-here"].concat(), CONFIG);
}

#[test]
fn slack_webhooks() {
    let url = [
        "https://hooks.slack.com/services/T",
        &random(UPPER_DIGITS, 8, 50),
        "/B",
        &random(UPPER_DIGITS, 8, 51),
        "/",
        &random(ALNUM, 24, 52),
    ]
    .concat();
    assert_hit(
        &format!("webhook = {url}"),
        CONFIG,
        Kind::SlackWebhook,
        &url,
    );
}

#[test]
fn slack_documentation_webhook_is_skipped() {
    let url = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";
    assert_clean(url, CONFIG);
}

#[test]
fn stripe_live_keys() {
    for (prefix, seed) in [["sk", "_live_"], ["rk", "_live_"]].iter().zip(60..) {
        let secret = token(prefix, ALNUM, 24, seed);
        assert_hit(
            &format!("Stripe.api_key = '{secret}'"),
            CODE,
            Kind::Stripe,
            &secret,
        );
    }
}

#[test]
fn stripe_test_keys_are_not_live_keys() {
    let secret = token(&["sk", "_test_"], ALNUM, 24, 62);
    assert_eq!(known(&format!("k {secret}")), None);
}

#[test]
fn google_api_keys() {
    let secret = token(&["AI", "za"], BASE64URL, 35, 70);
    assert_hit(
        &format!("<key>{secret}</key>"),
        CONFIG,
        Kind::Google,
        &secret,
    );
}

#[test]
fn openai_keys() {
    let legacy = token(&["sk", "-"], ALNUM, 48, 80);
    assert_hit(
        &format!("openai.api_key = \"{legacy}\""),
        CODE,
        Kind::OpenAi,
        &legacy,
    );
    let project = token(&["sk", "-proj-"], BASE64URL, 120, 81);
    assert_hit(&format!("OPENAI={project}"), CONFIG, Kind::OpenAi, &project);
}

#[test]
fn openai_lookalikes_in_prose_are_skipped() {
    assert_eq!(
        known("see sk-this-is-not-a-key-but-a-long-phrase-here"),
        None
    );
}

#[test]
fn anthropic_keys() {
    let secret = token(&["sk", "-ant-", "api03-"], BASE64URL, 93, 90) + "AA";
    assert_hit(
        &format!("ANTHROPIC_API_KEY={secret}"),
        CONFIG,
        Kind::Anthropic,
        &secret,
    );
}

#[test]
fn private_key_blocks() {
    for kind in ["RSA ", "EC ", "OPENSSH ", "DSA ", "ENCRYPTED ", ""] {
        let header = ["-----BEGIN ", kind, "PRIVATE", " KEY-----"].concat();
        assert_hit(&header, CONFIG, Kind::PrivateKey, &header);
    }
    let pgp = ["-----BEGIN PGP ", "PRIVATE", " KEY BLOCK-----"].concat();
    assert_hit(&format!("key = \"{pgp}\\n\""), CODE, Kind::PrivateKey, &pgp);
}

#[test]
fn public_keys_and_certificates_are_not_private_keys() {
    assert_clean("-----BEGIN PUBLIC KEY-----", CONFIG);
    assert_clean("-----BEGIN CERTIFICATE-----", CONFIG);
}

#[test]
fn json_web_tokens() {
    let jwt = [
        "ey",
        "JhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.",
        "ey",
        &random(BASE64URL, 60, 100),
        ".",
        &random(BASE64URL, 43, 101),
    ]
    .concat();
    assert_hit(
        &format!("Authorization: Bearer {jwt}"),
        CONFIG,
        Kind::Jwt,
        &jwt,
    );
}

#[test]
fn kamachiq_tokens() {
    let secret = token(&["kq", "_"], HEX, 64, 110);
    assert_hit(
        &format!("KAMACHIQ_TOKEN={secret}"),
        CONFIG,
        Kind::Kamachiq,
        &secret,
    );
}

#[test]
fn urls_with_a_password() {
    let password = random(ALNUM, 16, 120);
    let url = format!("postgres://app:{password}@db.internal:5432/app");
    assert_hit(
        &format!("DATABASE_URL={url}"),
        CONFIG,
        Kind::UrlPassword,
        &password,
    );
    let redis = format!("redis://:{password}@cache:6379");
    assert_hit(
        &format!("url: \"{redis}\""),
        CONFIG,
        Kind::UrlPassword,
        &password,
    );
}

#[test]
fn urls_on_documentation_hosts_are_skipped() {
    let password = random(ALNUM, 12, 121);
    for host in [
        "example.com",
        "db.example.org",
        "db.example",
        "cache.test",
        "x.invalid",
    ] {
        assert_clean(&format!("postgres://app:{password}@{host}/app"), CONFIG);
    }
    let url = format!("postgres://app:{password}@db.examples.com/app");
    assert_hit(&url, CONFIG, Kind::UrlPassword, &password);
}

#[test]
fn urls_without_a_real_password_are_skipped() {
    assert_clean("postgres://user:password@db.internal/db", CONFIG);
    assert_clean("DATABASE_URL=postgres://app:${DB_PASSWORD}@db/app", CONFIG);
    assert_clean("https://example.com:8443/path@v2", CONFIG);
    assert_clean("ssh://git@github.com:22/org/repo", CONFIG);
}

/// Each `{}` of `template` replaced by `value`: keeps names and values apart in this source,
/// which the scan of this crate's own files reads.
fn fill(template: &str, value: &str) -> String {
    template.replace("{}", value)
}

#[test]
fn quoted_assignments_in_code() {
    for (template, value) in [
        ("db_password = \"{}\"", "hunter2hunter2"),
        ("const API_KEY: &str = \"{}\";", "k3y-for-the-api"),
        ("const apiKey: string = '{}';", "q7Rw2ZpL9xKe"),
        ("token := \"{}\"", "s3cr3t-t0ken"),
        ("'client_secret' => '{}'", "Pa55word!Pa55word"),
        ("{\"password\": \"{}\"}", "c0rrecthorse"),
    ] {
        assert_hit(&fill(template, value), CODE, Kind::Assignment, value);
    }
}

#[test]
fn bare_assignments_in_configuration() {
    let aws = random(BASE64, 40, 200);
    for (template, value) in [
        ("DB_PASSWORD={}", "hunter2hunter2"),
        ("  aws_secret_access_key: {}", aws.as_str()),
        ("export GITHUB_TOKEN={}", "q7Rw2ZpL9xKe"),
    ] {
        assert_hit(&fill(template, value), CONFIG, Kind::Assignment, value);
    }
}

#[test]
fn assignment_hits_name_what_was_assigned() {
    let line = fill("DB_PASSWORD={}", "hunter2hunter2");
    let hit = scan(&line, CONFIG, 4.5).unwrap();
    assert_eq!(hit.what(), "value assigned to `DB_PASSWORD`");
}

#[test]
fn bare_values_in_code_are_expressions() {
    assert_clean("password = os.environ[\"DB_PASSWORD\"]", CODE);
    assert_clean("let token = next_token2(&mut lexer);", CODE);
    assert_clean("    password: String,", CODE);
    assert_clean("self.api_key = api_key_from_vault1", CODE);
}

#[test]
fn references_and_templates_are_not_secrets() {
    assert_clean("password = os.environ[\"DB_PASSWORD\"]", CONFIG);
    assert_clean("token: ${{ secrets.GITHUB_TOKEN }}", CONFIG);
    assert_clean("token: \"${{secrets.GITHUB_TOKEN_2}}\"", CONFIG);
    assert_clean("PASSWORD=${DB_PASSWORD}", CONFIG);
    assert_clean("PASSWORD=$DB_PASSWORD_2", CONFIG);
    assert_clean("const apiKey = process.env.API_KEY_V2;", CODE);
    assert_clean("apiKey: process.env.API_KEY_V2", CONFIG);
    assert_clean("api_key = \"<YOUR_API_KEY>\"", CODE);
    assert_clean("secret = \"{{vault_secret_1}}\"", CODE);
    assert_clean("password = \"%(db_password)s\"", CODE);
}

#[test]
fn placeholder_values_are_not_secrets() {
    assert_clean("password: changeme123", CONFIG);
    assert_clean("secret = \"xxxxxxxxxxxx\"", CODE);
    assert_clean("token = \"your_token_here\"", CODE);
    assert_clean("api_key = \"example-key-1234\"", CODE);
    assert_clean("password = \"aaaaaaaa\"", CODE);
    assert_clean("password = \"********\"", CODE);
    assert_clean("password = \"password\"", CODE);
}

#[test]
fn short_values_and_prose_are_not_secrets() {
    assert_clean("password = \"abc123\"", CODE);
    assert_clean("secret: \"The secret that signs session cookies\"", CONFIG);
    assert_clean("The token: configured by the operator", CONFIG);
}

#[test]
fn names_that_are_not_secrets() {
    assert_clean("token_type = \"bearer_v2_token\"", CODE);
    assert_clean("max_tokens = 4096", CONFIG);
    assert_clean("primary_key = \"id_1234567\"", CODE);
    assert_clean("secret_name: db-credentials-2024", CONFIG);
    assert_clean("password_file: /run/secrets/db_password1", CONFIG);
}

#[test]
fn labels_and_words_are_not_secrets() {
    assert_clean("AuthPlugin::Sha256Password => \"sha256_password\",", CODE);
    assert_clean("Secret::ClientTraffic => \"CLIENT_TRAFFIC_1\",", CODE);
    assert_clean("pExpr->u.zToken = \"coalesce\";", CODE);
    assert_clean(
        "const HINT_SECRET: &str = \"sensitive-property-value\";",
        CODE,
    );
    assert_clean("const SERVER: Token = Token(0);", CONFIG);
}

#[test]
fn comparisons_are_not_assignments() {
    assert_clean("if token == \"expected-1234\" {", CODE);
    assert_clean("if token != \"expected-1234\" {", CODE);
}

#[test]
fn secret_names() {
    for name in [
        "password",
        "DB_PASSWORD",
        "passwd",
        "keyPassword",
        "MYSQL_PASS",
        "client_secret",
        "JWT_SECRET",
        "github-token",
        "OAuthToken",
        "apiKey",
        "API_KEY",
        "apikey",
        "x-api-key",
        "aws_secret_access_key",
        "SECRET_KEY",
        "private_key",
        "config.db.password",
    ] {
        assert!(secret_name(name), "{name} should be a secret's name");
    }
    for name in [
        "token_type",
        "secret_name",
        "max_tokens",
        "tokenizer",
        "primary_key",
        "private_key_id",
        "password_hash",
        "bypass",
        "keyboard",
        "monkey",
    ] {
        assert!(!secret_name(name), "{name} should not be a secret's name");
    }
}

#[test]
fn identifier_words() {
    assert_eq!(
        words("awsSecretAccess_KEY"),
        ["aws", "secret", "access", "key"]
    );
    assert_eq!(words("OAuthToken"), ["oauth", "token"]);
    assert_eq!(words("x-api-key.v2"), ["x", "api", "key", "v2"]);
}

#[test]
fn high_entropy_base64_in_a_literal() {
    let secret = random(BASE64, 40, 130);
    assert_hit(
        &format!("const SIGNING: &[u8] = b\"{secret}\";"),
        CODE,
        Kind::HighEntropy,
        &secret,
    );
}

#[test]
fn high_entropy_after_an_equals_sign() {
    let secret = random(ALNUM, 32, 131);
    assert_hit(
        &format!("SESSION_SALT={secret}"),
        CONFIG,
        Kind::HighEntropy,
        &secret,
    );
}

#[test]
fn short_random_tokens_are_caught_at_a_scaled_threshold() {
    let secret = random(ALNUM, 20, 132);
    assert!(
        shannon_entropy(&secret) < 4.5,
        "would pass the plain threshold"
    );
    assert_hit(
        &format!("call(\"{secret}\")"),
        CODE,
        Kind::HighEntropy,
        &secret,
    );
}

#[test]
fn high_entropy_hex() {
    let secret = random(HEX, 32, 133);
    assert_hit(
        &format!("x-api-id: {secret}"),
        CONFIG,
        Kind::HighEntropy,
        &secret,
    );
}

#[test]
fn hex_encoded_text_and_numbers_are_not_secrets() {
    let hello = "48656c6c6f2c20776f726c642120";
    assert!(shannon_entropy(hello) > hex_threshold(4.5));
    assert!(hex_text(hello));
    assert_clean(&format!("decode(\"{hello}\")"), CODE);
    assert_clean("write(f64::MAX, \"1.7976931348623157e308\");", CODE);
    assert!(!hex_text(&random(HEX, 32, 230)));
}

#[test]
fn tokens_outside_literals_and_assignments_are_not_measured() {
    let body = random(BASE64, 64, 134);
    assert_clean(&body, CONFIG);
    assert_hit(&format!("k = \"{body}\""), CONFIG, Kind::HighEntropy, &body);
}

#[test]
fn git_and_sha_digests_are_not_secrets() {
    for length in [40, 64, 96, 128] {
        let digest = random(HEX, length, 140 + length as u64);
        assert!(shannon_entropy(&digest) > hex_threshold(4.5));
        assert_clean(&format!("rev = \"{digest}\""), CONFIG);
    }
}

#[test]
fn uuids_are_not_secrets() {
    let uuid = "3f2b8c1e-9d4a-4e7b-8f6c-2a1d0e9b7c5a";
    assert_clean(&format!("id: \"{uuid}\""), CONFIG);
    // Without its dashes it is 32 hex digits, which the hex rule does take for a secret.
    assert!(entropy_hit(&uuid.replace('-', ""), "", 4.5).is_some());
}

#[test]
fn integrity_hashes_are_not_secrets() {
    let hash = random(BASE64, 86, 150) + "==";
    let line = format!("      \"integrity\": \"sha512-{hash}\",");
    assert_clean(&line, CONFIG);
    assert!(
        entropy_hit(&hash, "", 4.5).is_some(),
        "the hash alone is high-entropy"
    );
    assert_clean(&format!("  integrity sha512-{hash}"), CONFIG);
}

#[test]
fn lock_files_skip_the_entropy_rule_only() {
    let hash = random(BASE64, 43, 160) + "=";
    let line = format!("github.com/org/mod v1.2.3 h1:{hash}");
    assert_eq!(hit(&line, CONFIG), Some((Kind::HighEntropy, hash)));
    assert_clean(&line, LOCK);
    let key = token(&["AK", "IA"], UPPER_DIGITS, 16, 161);
    assert_hit(&format!("x = \"{key}\""), LOCK, Kind::Aws, &key);
}

#[test]
fn low_entropy_base64_is_not_a_secret() {
    // base64 of "key1" twelve times: mixed case and digits, but only 4.0 bits per character.
    let low = "a2V5MWtleTFrZXkxa2V5MWtleTFrZXkxa2V5MWtleTFrZXkxa2V5MWtleTFrZXkx";
    assert!(mixed(low));
    assert_clean(&format!("data = \"{low}\""), CONFIG);
}

#[test]
fn bare_identifiers_in_code_are_not_measured() {
    let identifier = "sqlite3DbMallocRawNN";
    assert!(mean_word_length(identifier) >= 3.0);
    assert_clean(&format!("p = {}(db, n);", random(ALNUM, 24, 220)), CODE);
    assert_clean("use crate::NormalizerNfkdTablesV1;", CONFIG);
}

#[test]
fn identifiers_in_literals_are_not_secrets() {
    for identifier in [
        "MSVC_SPECTRE_LIB_DIR_aarch64_pc_windows_msvc",
        "Utf8CharsWithHandler",
        "Tls13RequiredForQuic",
    ] {
        assert!(mixed(identifier) && mean_word_length(identifier) >= 3.0);
        assert_clean(&format!("name = \"{identifier}\""), CODE);
    }
    assert_eq!(mean_word_length("Utf8CharsWithHandler"), 4.0);
    assert_eq!(mean_word_length("HTTPServer2"), 11.0 / 3.0);
    assert!(mean_word_length(&random(BASE64, 64, 221)) < 3.0);
}

#[test]
fn ids_in_urls_are_not_secrets() {
    let gist = random(HEX, 32, 222);
    let url = format!("\"https://play.rust-lang.org/?edition=2018&gist={gist}\"");
    assert_clean(&url, CONFIG);
    assert!(entropy_hit(&gist, "", 4.5).is_some());
}

#[test]
fn words_paths_and_ulids_are_not_secrets() {
    assert_clean("name = \"ConfigurationManagerFactory\"", CODE);
    assert_clean("path = \"src/components/widgets/button/index\"", CODE);
    assert_clean("id: \"01J9ZX3K4M5N6P7Q8R9S0T1V2W\"", CONFIG);
    assert_clean(
        "url: \"https://github.com/kamachiq/kamachiq/blob/main/README.md\"",
        CONFIG,
    );
}

#[test]
fn paths_in_urls_are_not_secrets() {
    let url = "\"http://127.0.0.1:$PORT/v1/plans/execute\"";
    assert!(entropy_hit("PORT/v1/plans/execute", "", 4.5).is_none());
    assert_clean(url, CONFIG);
    assert!(path_like("PORT/v1/plans/execute"));
    assert!(path_like("src/Widgets/button2"));
    assert!(path_like(
        "Authorization/roleDefinitions/9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
    ));
    let base64 = format!("{}/{}", random(ALNUM, 12, 210), random(ALNUM, 17, 211));
    assert!(!path_like(&base64));
    assert!(!path_like("plain_word_without_slashes"));
}

#[test]
fn data_uris_are_not_secrets() {
    let payload = random(BASE64, 200, 170);
    assert_clean(&format!("src=\"data:image/png;base64,{payload}\""), CONFIG);
}

#[test]
fn a_threshold_of_seven_turns_the_entropy_rule_off() {
    // Every token character once, in a stride order: the most entropy a token can have.
    let alphabet: Vec<char> = [BASE64, "_-"].concat().chars().collect();
    let token: String = (0..alphabet.len())
        .map(|i| alphabet[i * 37 % alphabet.len()])
        .collect();
    assert!(shannon_entropy(&token) > 6.0);
    let line = format!("k = \"{token}\"");
    assert_eq!(
        scan(&line, CONFIG, 6.0).map(|h| h.kind),
        Some(Kind::HighEntropy)
    );
    assert_eq!(scan(&line, CONFIG, 7.0), None);
}

#[test]
fn thresholds() {
    assert_eq!(base64_threshold(4.5, 32), 4.5);
    assert_eq!(base64_threshold(4.5, 64), 4.5);
    assert!((base64_threshold(4.5, 20) - 3.8219).abs() < 1e-4);
    assert_eq!(hex_threshold(4.5), 3.0);
}

#[test]
fn entropy_in_bits_per_character() {
    assert_eq!(shannon_entropy(""), 0.0);
    assert_eq!(shannon_entropy("aaaa"), 0.0);
    assert_eq!(shannon_entropy("abcd"), 2.0);
    assert_eq!(shannon_entropy("aabb"), 1.0);
}

#[test]
fn one_hit_per_line_the_most_specific_first() {
    let github = token(&["gh", "p_"], ALNUM, 36, 190);
    let line = format!(
        "GITHUB_TOKEN=\"{github}\" other=\"{}\"",
        random(BASE64, 40, 191)
    );
    assert_hit(&line, CONFIG, Kind::GitHub, &github);
}

#[test]
fn alphabets_and_counting_runs_are_not_secrets() {
    let alphabet = [BASE64URL, "=="].concat();
    assert!(shannon_entropy(&alphabet) > 5.9);
    assert_clean(&format!("const ALPHABET: &str = \"{alphabet}\";"), CODE);
    assert_clean("password = \"abcd1234\"", CODE);
    assert!(sequential("abcdefgh"));
    assert!(sequential("12345678"));
    assert!(!sequential("q7Rw2ZpL9xKe"));
    assert!(!sequential(""));
}

#[test]
fn format_templates_are_not_secrets() {
    assert_clean("let line = format!(\"api_key = '{key}'\");", CODE);
    assert_clean("url = f\"postgres://app:{password}@db/app\"", CODE);
}

#[test]
fn redaction_shows_a_quarter_at_most_four_characters() {
    let redacted = |secret: &str| {
        Hit {
            kind: Kind::HighEntropy,
            secret,
            name: None,
        }
        .redacted()
    };
    assert_eq!(redacted("abcdefgh"), "ab…, 8 characters");
    assert_eq!(redacted("abcdefghijklmnop"), "abcd…, 16 characters");
    assert_eq!(redacted(&"x".repeat(100)), "xxxx…, 100 characters");
    assert_eq!(redacted("abc"), "…, 3 characters");
}

#[test]
fn file_kinds() {
    assert_eq!(FileKind::of("src/lib.rs"), CODE);
    assert_eq!(FileKind::of("app/Config.TS"), CODE);
    assert_eq!(FileKind::of("deploy/values.yaml"), CONFIG);
    assert_eq!(FileKind::of(".env.production"), CONFIG);
    assert_eq!(FileKind::of("web/package-lock.json"), LOCK);
    assert_eq!(FileKind::of("Cargo.lock"), LOCK);
    assert_eq!(FileKind::of("Makefile"), CONFIG);
}

#[test]
fn fake_values_are_deterministic() {
    assert_eq!(random(ALNUM, 12, 7), random(ALNUM, 12, 7));
    assert_ne!(random(ALNUM, 12, 7), random(ALNUM, 12, 8));
}
