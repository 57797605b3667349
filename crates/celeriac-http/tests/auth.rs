//! With `CELERIAC_API_TOKEN` set, every API and dashboard route answers
//! 401 without the token — enumerated from the router's own route list —
//! and the token is accepted as a bearer header or through the dashboard's
//! login (a session cookie), and never echoed back.

mod support;

use celeriac_http::HttpConfig;
use support::{seed_routes, Cluster};

const TOKEN: &str = "s3cret-Token_value";

fn concrete(path: &str) -> String {
    path.replace("{job_id}", "00000000-0000-0000-0000-000000000000")
        .replace("{task}", "tasks.add")
        .replace("{id}", "some-id")
        .replace("{file}", "dashboard.js")
        .replace("{name}", "celeriac@host")
}

async fn cluster() -> Cluster {
    Cluster::start_with(
        HttpConfig {
            api_token: Some(TOKEN.to_owned()),
            ..HttpConfig::default()
        },
        false,
    )
    .await
}

#[tokio::test]
async fn every_route_needs_the_token() {
    let cluster = cluster().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut checked = 0;
    let routes = celeriac_http::routes(&seed_routes());
    for (method, path) in &routes {
        let url = format!("{}{}", cluster.url, concrete(path));
        let request = match *method {
            "GET" => client.get(&url),
            "POST" => client.post(&url).json(&serde_json::json!({"number": 1})),
            other => panic!("method {other}"),
        };
        for auth in [None, Some("Bearer wrong-token"), Some("Basic czNjcmV0")] {
            let request = request.try_clone().expect("clone");
            let request = match auth {
                Some(value) => request.header("authorization", value),
                None => request,
            };
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let body = response.text().await.expect("body");
            assert!(!body.contains(TOKEN), "{method} {path} leaks the token");
            if *path == "/health" {
                assert_eq!(status, 200, "/health stays open");
            } else {
                assert_eq!(status, 401, "{method} {path} with {auth:?}: {body}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, routes.len());
    // Paths that do not exist are 401 too: nothing is revealed without the token.
    let status = client
        .get(format!("{}/api/nothing-here", cluster.url))
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_login_page_is_styled_without_the_token() {
    let cluster = cluster().await;
    let client = reqwest::Client::new();
    let page = client
        .get(format!("{}/dashboard", cluster.url))
        .send()
        .await
        .expect("request");
    assert_eq!(page.status(), 401);
    let html = page.text().await.expect("body");
    // What the login form itself loads is served: its style sheet and logo.
    for (asset, kind) in [("style.css", "text/css"), ("favicon.svg", "image/svg+xml")] {
        let path = format!("/dashboard/assets/{asset}");
        assert!(html.contains(&path), "the login page uses {path}");
        let response = client
            .get(format!("{}{path}", cluster.url))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .to_owned();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }
    // Nothing else: the dashboard's scripts still need a session.
    for path in [
        "/dashboard/assets/dashboard.js",
        "/dashboard/assets/worker.js",
    ] {
        let status = client
            .get(format!("{}{path}", cluster.url))
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, 401, "{path}");
    }
}

#[tokio::test]
async fn the_token_opens_the_api_and_the_dashboard() {
    let cluster = cluster().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let ok = client
        .get(format!("{}/api/workers", cluster.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status(), 200);

    // A page without the token is the login form (401); signing in with
    // the wrong token shows it again.
    let page = client
        .get(format!("{}/dashboard", cluster.url))
        .send()
        .await
        .expect("request");
    assert_eq!(page.status(), 401);
    assert!(page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|csp| csp.contains("script-src 'self'")));
    assert!(page.text().await.expect("html").contains("<form"));
    let wrong = client
        .post(format!("{}/dashboard/login", cluster.url))
        .form(&[("token", "nope"), ("next", "/dashboard")])
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), 401);

    let login = client
        .post(format!("{}/dashboard/login", cluster.url))
        .form(&[("token", TOKEN), ("next", "/dashboard/tasks/abc")])
        .send()
        .await
        .expect("request");
    assert_eq!(login.status(), 303);
    assert_eq!(
        login
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("/dashboard/tasks/abc")
    );
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("session cookie")
        .to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        !cookie.contains(TOKEN),
        "the cookie is a session id, not the token"
    );
    let session = cookie.split(';').next().expect("pair").to_owned();
    for path in ["/dashboard", "/api/overview", "/api/tasks"] {
        let status = client
            .get(format!("{}{path}", cluster.url))
            .header("cookie", &session)
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, 200, "{path} with the session");
    }
    // An open redirect is refused: `next` outside the dashboard goes home.
    let login = client
        .post(format!("{}/dashboard/login", cluster.url))
        .form(&[("token", TOKEN), ("next", "https://evil.example/")])
        .send()
        .await
        .expect("request");
    assert_eq!(
        login
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("/dashboard")
    );
}
