//! Console login for HTTP tests, shared by `crates/server/tests/common`
//! and (through `#[path]`) the CLI's process tests.
#![allow(dead_code)] // each test file uses a subset

use reqwest::multipart::{Form, Part};
use reqwest::{Client, Response, StatusCode};

/// The value of cookie `name` set by `r`.
pub fn cookie_of(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{name}="))
                .map(|s| s.split(';').next().unwrap_or_default().to_string())
        })
}

/// The CSRF token of a console page's form.
pub fn csrf_of(html: &str) -> String {
    let field = "name=\"csrf\" value=\"";
    let i = html.find(field).expect("csrf field") + field.len();
    html[i..].split('"').next().unwrap_or_default().to_string()
}

/// A console session on `base`: a client that does not follow redirects
/// (to see a 303 and its `Location`) and the `cookie` header value of
/// `user` logged in.
pub async fn console_session(base: &str, user: &str, password: &str) -> (Client, String) {
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = console_login(&http, base, user, password).await;
    (http, cookie)
}

/// Log in to the console; returns the `cookie` header value.
pub async fn console_login(http: &Client, base: &str, user: &str, password: &str) -> String {
    let r = http.get(format!("{base}/ui/login")).send().await.unwrap();
    let pre = cookie_of(&r, "et_login").expect("et_login cookie");
    let r = http
        .post(format!("{base}/ui/login"))
        .header("cookie", format!("et_login={pre}"))
        .form(&[
            ("csrf", pre.as_str()),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "login");
    format!(
        "et_session={}",
        cookie_of(&r, "et_session").expect("session cookie")
    )
}

/// Adds a file to bank `bank_id` through the console's upload form, as a
/// logged-in reviewer does (the bank page's CSRF token, then the form);
/// returns where the console sent the browser (the bank page with its
/// message, `?msg=added` or `?msg=held`).
pub async fn console_add_content(
    http: &Client,
    base: &str,
    cookie: &str,
    bank_id: i64,
    file_name: &str,
    bytes: Vec<u8>,
) -> String {
    let bank_page = format!("{base}/ui/banks/{bank_id}");
    let page = http
        .get(&bank_page)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = Form::new()
        .text("csrf", csrf_of(&page))
        .part("file", Part::bytes(bytes).file_name(file_name.to_string()));
    let r = http
        .post(format!("{bank_page}/content"))
        .header("cookie", cookie)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "console upload");
    r.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string()
}
