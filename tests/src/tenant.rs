//! A tenant driven through the command API as its owner: the shared steps of many tests.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::{CommandApp, Onboarded};

pub struct Tenant<'a> {
    pub app: &'a CommandApp,
    pub owner: Onboarded,
}

impl Tenant<'_> {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        self.send_as(&self.owner.access_token, method, path, headers, body)
            .await
    }

    pub async fn send_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .app
            .client
            .request(method, format!("{}{path}", self.app.address))
            .bearer_auth(token);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// Open 08:00-20:00 every day, UTC; one 45-minute service with a 15-minute buffer.
    pub async fn configured(&self) -> String {
        let (status, headers, _) = self
            .send(
                reqwest::Method::PUT,
                "/v1/bot-config",
                &[("if-match", "\"0\"")],
                Some(settings()),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(headers["etag"], "\"1\"");
        let (status, _, body) = self
            .send(reqwest::Method::POST, "/v1/services", &[], Some(haircut()))
            .await;
        assert_eq!(status, 201, "{body}");
        body["service_id"].as_str().unwrap().to_owned()
    }

    pub async fn book(
        &self,
        service_id: &str,
        start: &str,
        phone: &str,
        key: Option<&str>,
    ) -> (u16, Value) {
        let headers: Vec<(&str, &str)> = key
            .map(|k| vec![("idempotency-key", k)])
            .unwrap_or_default();
        let body = json!({"service_id": service_id, "start": start, "customer": {"phone": phone, "name": "Ana"}});
        let (status, _, body) = self
            .send(reqwest::Method::POST, "/v1/bookings", &headers, Some(body))
            .await;
        (status, body)
    }
}

pub fn settings() -> Value {
    let day = json!([{"open": "08:00", "close": "20:00"}]);
    json!({
        "time_zone": "UTC",
        "hours": {"monday": day, "tuesday": day, "wednesday": day, "thursday": day, "friday": day, "saturday": day, "sunday": day},
        "rules": {"min_notice_minutes": 60, "horizon_days": 30, "slot_step_minutes": 15},
        "payment_methods": [{"kind": "cash"}],
    })
}

pub fn haircut() -> Value {
    json!({"name": "Haircut", "price": {"minor": 2500, "currency": "EUR"}, "duration_minutes": 45, "buffer_minutes": 15})
}

/// 10:00 UTC the day after tomorrow.
pub fn slot(hour: u32) -> String {
    let day = (Utc::now() + Duration::days(2)).date_naive();
    format!("{}T{hour:02}:00:00Z", day)
}
