//! `colo lab …`: datalabs from the shell, in the shape users know from skaha and kubectl. A thin
//! client of a running colo's GraphQL API (the labs are that colo's children): each command is
//! one query or mutation — `logs -f` and `events -f` one subscription over WebSocket, which the
//! server ends when the lab has — and an error is the API's own message.

use crate::cli::{ApiArgs, LabCommand};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::time::Duration;

const FIELDS: &str =
    "id name image owner state reason base expiresAt cpuMillis memoryMib sharedWith";

struct Api {
    url: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    fn new(args: ApiArgs) -> Result<Api> {
        let token = args.token.context(
            "no token: pass --token or set COLO_TOKEN (`colo token create --user NAME` makes one)",
        )?;
        Ok(Api {
            url: args.url.trim_end_matches('/').to_string(),
            token,
            client: colo_connectors::http_client_builder()
                .timeout(Duration::from_secs(60))
                .build()?,
        })
    }

    /// The `data` of one GraphQL request; its first error as the error.
    async fn call(&self, query: &str, variables: Value) -> Result<Value> {
        let body = serde_json::to_vec(&json!({ "query": query, "variables": variables }))?;
        let bytes = self
            .client
            .post(format!("{}/graphql", self.url))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| format!("no colo at {} (is `colo up` running? --url)", self.url))?
            .bytes()
            .await?;
        let answer: Value = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the answer was not the API's: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            )
        })?;
        if let Some(e) = answer["errors"].as_array().and_then(|e| e.first()) {
            bail!("{}", e["message"].as_str().unwrap_or("the API refused"));
        }
        Ok(answer["data"].clone())
    }

    /// Runs a GraphQL subscription over WebSocket (graphql-transport-ws), giving each item's
    /// `data` to `each` until the server completes it; an error item is the error.
    async fn subscribe(
        &self,
        query: &str,
        variables: Value,
        mut each: impl FnMut(&Value) -> Result<()>,
    ) -> Result<()> {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}/graphql", self.url.replacen("http", "ws", 1));
        let mut request = url.as_str().into_client_request()?;
        let headers = request.headers_mut();
        headers.insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().expect("a header value"),
        );
        headers.insert(
            "authorization",
            format!("Bearer {}", self.token)
                .parse()
                .context("the token is not a header value")?,
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .with_context(|| format!("no colo at {} (is `colo up` running? --url)", self.url))?;
        let send = |v: Value| Message::Text(v.to_string().into());
        ws.send(send(json!({ "type": "connection_init", "payload": {} })))
            .await?;
        // The protocol wants the server's acknowledgement before the subscription.
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str().contains("connection_ack") => break,
                Some(Ok(Message::Close(frame))) => bail!(
                    "the API refused the connection: {}",
                    frame.map_or_else(String::new, |f| f.reason.to_string())
                ),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => bail!(
                    "the connection to {} ended before its acknowledgement",
                    self.url
                ),
            }
        }
        ws.send(send(json!({
            "id": "1",
            "type": "subscribe",
            "payload": { "query": query, "variables": variables },
        })))
        .await?;
        while let Some(message) = ws.next().await {
            let message: Value = match message? {
                Message::Text(t) => serde_json::from_str(t.as_str())?,
                Message::Close(frame) => bail!(
                    "the API closed the subscription: {}",
                    frame.map_or_else(String::new, |f| f.reason.to_string())
                ),
                _ => continue,
            };
            match message["type"].as_str() {
                Some("next") => {
                    let payload = &message["payload"];
                    if let Some(e) = payload["errors"].as_array().and_then(|e| e.first()) {
                        bail!("{}", e["message"].as_str().unwrap_or("the API refused"));
                    }
                    each(&payload["data"])?;
                }
                Some("error") => {
                    let first = &message["payload"][0]["message"];
                    bail!("{}", first.as_str().unwrap_or("the API refused"));
                }
                Some("complete") => return Ok(()),
                Some("ping") => ws.send(send(json!({ "type": "pong" }))).await?,
                _ => {}
            }
        }
        bail!(
            "the connection to {} ended before the subscription",
            self.url
        )
    }

    async fn lab(&self, id: &str, extra: &str) -> Result<Value> {
        let q = format!("query($id: String!) {{ datalab(id: $id) {{ {FIELDS} {extra} }} }}");
        Ok(self.call(&q, json!({ "id": id })).await?["datalab"].clone())
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_event(e: &Value) {
    let at = e["atSecs"]
        .as_i64()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string());
    println!("{at}  {:<9} {}", text(&e["state"]), text(&e["reason"]));
}

fn print_lab(lab: &Value) {
    println!(
        "{:<17} {:<16} {:<16} {:<10} {:<9} {}",
        text(&lab["id"]),
        text(&lab["name"]),
        text(&lab["image"]),
        text(&lab["owner"]),
        text(&lab["state"]),
        text(&lab["reason"])
    );
}

pub async fn lab(args: ApiArgs, what: LabCommand) -> Result<i32> {
    let api = Api::new(args)?;
    match what {
        LabCommand::Create {
            image,
            name,
            volumes,
            cpu,
            memory_mib,
            lifetime,
            remove_when_finished,
            args,
        } => {
            let mut input = json!({
                "image": image,
                "name": name.unwrap_or_else(|| image.clone()),
                "args": args,
                "removeWhenFinished": remove_when_finished,
            });
            if !volumes.is_empty() {
                input["volumes"] = json!(volumes);
            }
            if let Some(c) = cpu {
                input["cpuMillis"] = json!((c * 1000.0).round() as u64);
            }
            if let Some(m) = memory_mib {
                input["memoryMib"] = json!(m);
            }
            if let Some(l) = lifetime {
                input["lifetimeSeconds"] = json!(l);
            }
            let q = format!(
                "mutation($input: CreateDatalabInput!) {{ createDatalab(input: $input) {{ datalab {{ {FIELDS} }} }} }}"
            );
            let lab = &api.call(&q, json!({ "input": input })).await?["createDatalab"]["datalab"];
            println!("{}", text(&lab["id"]));
            if let Some(base) = lab["base"].as_str() {
                eprintln!(
                    "colo: {} at {}{base} once RUNNING",
                    text(&lab["id"]),
                    api.url
                );
            }
        }
        LabCommand::Ps => {
            let q = format!("{{ datalabs {{ {FIELDS} }} }}");
            println!(
                "{:<17} {:<16} {:<16} {:<10} {:<9} REASON",
                "ID", "NAME", "IMAGE", "OWNER", "STATE"
            );
            for lab in api.call(&q, json!({})).await?["datalabs"]
                .as_array()
                .into_iter()
                .flatten()
            {
                print_lab(lab);
            }
        }
        LabCommand::Logs { id, follow } if follow => {
            // The last MiB so far, then each piece as the lab writes it, until it has ended.
            let q = "subscription($id: String!) { datalabLogs(id: $id, tailBytes: 1048576) }";
            api.subscribe(q, json!({ "id": id }), |data| {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                out.write_all(data["datalabLogs"].as_str().unwrap_or("").as_bytes())?;
                out.flush()?;
                Ok(())
            })
            .await?;
        }
        LabCommand::Logs { id, .. } => {
            let lab = api.lab(&id, "log(tailBytes: 1048576)").await?;
            print!("{}", lab["log"].as_str().unwrap_or(""));
        }
        LabCommand::Events { id, follow } if follow => {
            let q = "subscription($id: String!) { datalabEvents(id: $id) { state reason atSecs } }";
            api.subscribe(q, json!({ "id": id }), |data| {
                print_event(&data["datalabEvents"]);
                Ok(())
            })
            .await?;
        }
        LabCommand::Events { id, .. } => {
            let lab = api.lab(&id, "events { state reason atSecs }").await?;
            for e in lab["events"].as_array().into_iter().flatten() {
                print_event(e);
            }
        }
        LabCommand::Open { id } => {
            let lab = api.lab(&id, "").await?;
            match lab["base"].as_str() {
                Some(base) => println!("{}{base}", api.url),
                None => {
                    bail!("lab {id} has no web interface (a headless lab: `colo lab logs {id}`)")
                }
            }
        }
        LabCommand::Renew { id, seconds } => {
            let q = format!(
                "mutation($id: String!, $s: Int) {{ renewDatalab(id: $id, seconds: $s) {{ {FIELDS} }} }}"
            );
            let lab = &api.call(&q, json!({ "id": id, "s": seconds })).await?["renewDatalab"];
            println!(
                "{} expires at {}",
                text(&lab["id"]),
                text(&lab["expiresAt"])
            );
        }
        LabCommand::Share { id, user } => share(&api, "shareDatalab", &id, &user).await?,
        LabCommand::Unshare { id, user } => share(&api, "unshareDatalab", &id, &user).await?,
        LabCommand::Stop { id } => {
            let q = format!("mutation($id: String!) {{ stopDatalab(id: $id) {{ {FIELDS} }} }}");
            print_lab(&api.call(&q, json!({ "id": id })).await?["stopDatalab"]);
        }
        LabCommand::Delete { id } => {
            api.call(
                "mutation($id: String!) { destroyDatalab(id: $id) }",
                json!({ "id": id }),
            )
            .await?;
            println!("{id} deleted");
        }
    }
    Ok(0)
}

async fn share(api: &Api, verb: &str, id: &str, user: &str) -> Result<()> {
    let q = format!(
        "mutation($id: String!, $u: String!) {{ {verb}(id: $id, user: $u) {{ {FIELDS} }} }}"
    );
    let lab = &api.call(&q, json!({ "id": id, "u": user })).await?[verb];
    println!(
        "{} shared with: {}",
        text(&lab["id"]),
        text(&lab["sharedWith"])
    );
    Ok(())
}
