//! `bookingctl chat`: a terminal WhatsApp chat as a customer of the demo tenant. What you type
//! goes to the platform as a signed webhook through the fake Cloud API; the bot's replies are
//! read back from what the fake received. Interactive lists and buttons, and a template's quick
//! replies (a reminder's Confirm, Reschedule, Cancel), show as numbered choices: type the
//! number to tap one. Messages the business sent meanwhile (a reminder) show with the next
//! answer.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// A choice the last message offered: its id, title, and what it is tapped as.
struct Choice {
    id: String,
    title: String,
    kind: &'static str,
}

pub async fn run(env: &BTreeMap<String, String>, phone: &str) -> anyhow::Result<()> {
    let fake = env
        .get("FAKE_WHATSAPP_URL")
        .context("no FAKE_WHATSAPP_URL: run `just up` first")?;
    let number = env
        .get("DEMO_PHONE_NUMBER_ID")
        .context("no DEMO_PHONE_NUMBER_ID: run `just up` first")?;
    let digits = phone.trim_start_matches('+').to_owned();
    let client = reqwest::Client::new();
    let mut seen = received(&client, fake, &digits).await?.len();
    let mut choices: Vec<Choice> = Vec::new();
    println!("Chatting with Demo Salon as +{digits}. Say hi! (Ctrl-D to leave)\n");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        print!("you> ");
        std::io::stdout().flush()?;
        let Some(line) = lines.next_line().await? else {
            println!();
            return Ok(());
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut message =
            json!({"phone_number_id": number, "from": digits, "name": "Demo Customer"});
        match line
            .parse::<usize>()
            .ok()
            .and_then(|n| choices.get(n.wrapping_sub(1)))
        {
            Some(choice) => {
                message[choice.kind] = json!({"id": choice.id, "title": choice.title});
            }
            None => message["text"] = json!(line),
        }
        let response = client
            .post(format!("{fake}/_fake/inbound"))
            .json(&message)
            .send()
            .await?;
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if answer["webhook_status"] != 200 {
            println!("  (the platform did not take it: {answer})");
            continue;
        }
        // Replies arrive asynchronously (the sender); show them as they come.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut quiet_since = None;
        while Instant::now() < deadline {
            let all = received(&client, fake, &digits).await?;
            if all.len() > seen {
                for message in &all[seen..] {
                    choices = show(message);
                }
                seen = all.len();
                quiet_since = Some(Instant::now());
            } else if quiet_since.is_some_and(|t| t.elapsed() > Duration::from_millis(400)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if quiet_since.is_none() {
            println!("  (no answer yet; the bot may be handing you to a person)");
        }
    }
}

async fn received(client: &reqwest::Client, fake: &str, to: &str) -> anyhow::Result<Vec<Value>> {
    let response = client
        .get(format!("{fake}/_fake/messages"))
        .query(&[("to", to)])
        .send()
        .await
        .with_context(|| format!("cannot reach the fake Cloud API at {fake}"))?;
    Ok(response.json().await?)
}

/// Prints a message the bot sent and returns the choices it offers.
fn show(message: &Value) -> Vec<Choice> {
    let body = &message["body"];
    let mut choices = Vec::new();
    match body["type"].as_str() {
        Some("interactive") => {
            let interactive = &body["interactive"];
            println!(
                "bot> {}",
                interactive["body"]["text"].as_str().unwrap_or_default()
            );
            if interactive["type"] == "button" {
                for b in interactive["action"]["buttons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    choices.push(Choice {
                        id: b["reply"]["id"].as_str().unwrap_or_default().into(),
                        title: b["reply"]["title"].as_str().unwrap_or_default().into(),
                        kind: "button_reply",
                    });
                }
            } else {
                for section in interactive["action"]["sections"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    for r in section["rows"].as_array().into_iter().flatten() {
                        let title = r["title"].as_str().unwrap_or_default();
                        let description = r["description"]
                            .as_str()
                            .map(|d| format!(" ({d})"))
                            .unwrap_or_default();
                        choices.push(Choice {
                            id: r["id"].as_str().unwrap_or_default().into(),
                            title: format!("{title}\u{0}{description}"),
                            kind: "list_reply",
                        });
                    }
                }
            }
            for (i, c) in choices.iter_mut().enumerate() {
                let (title, description) = c
                    .title
                    .split_once('\u{0}')
                    .map(|(t, d)| (t.to_owned(), d.to_owned()))
                    .unwrap_or((c.title.clone(), String::new()));
                println!("      {}. {title}{description}", i + 1);
                c.title = title;
            }
        }
        Some("template") => {
            let template = &body["template"];
            let components = template["components"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let parameters: Vec<&str> = components
                .iter()
                .filter(|c| c["type"] == "body")
                .flat_map(|c| c["parameters"].as_array().into_iter().flatten())
                .filter_map(|p| p["text"].as_str())
                .collect();
            println!(
                "bot> [template {} ({})] {}",
                template["name"].as_str().unwrap_or_default(),
                template["language"]["code"].as_str().unwrap_or_default(),
                parameters.join(" · ")
            );
            for button in components.iter().filter(|c| c["type"] == "button") {
                let payload = button["parameters"][0]["payload"]
                    .as_str()
                    .unwrap_or_default();
                // The button's text is the template's own; the payload says what it does.
                let title = match payload.split(':').nth(1) {
                    Some("confirm") => "Confirm",
                    Some("resched") => "Reschedule",
                    Some("cancel") => "Cancel",
                    _ => payload,
                };
                println!("      {}. {title}", choices.len() + 1);
                choices.push(Choice {
                    id: payload.to_owned(),
                    title: title.to_owned(),
                    kind: "template_reply",
                });
            }
        }
        _ => println!("bot> {}", body["text"]["body"].as_str().unwrap_or_default()),
    }
    choices
}
