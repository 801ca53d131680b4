//! `AlertRouter`: translates the alerts a request may publish into intent records —
//! `IngestAlertRequested` for each, and `CreateIncidentRequested` for a firing alert at or above
//! `auto_create_incident.min_severity` when enabled.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use sre_config::AutoCreateIncident;
use sre_intents::alert::{CreateIncidentRequested, IngestAlertRequested};
use sre_intents::record::RecordMeta;
use sre_intents::{IntentRecord, IntentType};
use sre_supervision::ActorSlot;

use super::batch::AlertBatch;
use super::severity;

/// The actor.
pub struct AlertRouter;

/// Its arguments.
#[derive(Clone)]
pub struct RouterArgs {
    /// Topic of the records.
    pub topic: String,
    /// `ce_source`.
    pub source: String,
    /// Incident auto-creation.
    pub auto_create: AutoCreateIncident,
    /// Where callers find it.
    pub slot: ActorSlot<RouterMsg>,
}

/// Messages.
pub enum RouterMsg {
    /// The records for the alerts at these indices of the batch.
    Translate(
        Arc<AlertBatch>,
        Vec<usize>,
        RpcReplyPort<Result<Vec<IntentRecord>, String>>,
    ),
}

impl Actor for AlertRouter {
    type Msg = RouterMsg;
    type State = RouterArgs;
    type Arguments = RouterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RouterMsg>,
        args: RouterArgs,
    ) -> Result<RouterArgs, ActorProcessingErr> {
        args.slot.publish(myself);
        Ok(args)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<RouterMsg>,
        state: &mut RouterArgs,
    ) -> Result<(), ActorProcessingErr> {
        state.slot.clear(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<RouterMsg>,
        msg: RouterMsg,
        state: &mut RouterArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::Translate(batch, indices, reply) => {
                let _ = reply.send(translate(state, &batch, &indices).map_err(|e| e.to_string()));
            }
        }
        Ok(())
    }
}

/// The records for `indices` of `batch`.
pub fn translate(
    args: &RouterArgs,
    batch: &AlertBatch,
    indices: &[usize],
) -> Result<Vec<IntentRecord>, serde_json::Error> {
    let p = &batch.payload;
    let received_at = batch.received_at_rfc3339();
    let correlation_id = batch.correlation_id();
    let mut out = Vec::with_capacity(indices.len() * 2);
    for &i in indices {
        let (alert, prep) = (&p.alerts[i], &batch.alerts[i]);
        let idempotency_key = batch.idempotency_key(i);
        let rung = severity::severity(&alert.labels);
        let severity = severity::name(rung);
        let key = format!("alert:{}", prep.fingerprint);
        let meta = |kind, idempotency_key| RecordMeta {
            topic: &args.topic,
            kind,
            source: &args.source,
            key: key.clone(),
            idempotency_key,
            correlation_id,
            traceparent: batch.traceparent.as_deref(),
            time: &received_at,
        };
        let ingest = IngestAlertRequested {
            source: "alertmanager",
            fingerprint: &prep.fingerprint,
            status: &alert.status,
            severity,
            alertname: alert.labels.get("alertname").map(String::as_str),
            labels: &alert.labels,
            annotations: &alert.annotations,
            starts_at: &alert.starts_at,
            ends_at: &alert.ends_at,
            generator_url: &alert.generator_url,
            receiver: &p.receiver,
            group_key: &p.group_key,
            external_url: &p.external_url,
            received_at: &received_at,
        };
        out.push(IntentRecord::new(
            meta(IntentType::IngestAlertRequested, idempotency_key.clone()),
            &ingest,
        )?);
        let qualifies = args.auto_create.enabled
            && alert.status == "firing"
            && rung >= args.auto_create.min_severity;
        if qualifies {
            let title = match (
                alert.labels.get("alertname"),
                alert.annotations.get("summary"),
            ) {
                (Some(n), Some(s)) => format!("{n}: {s}"),
                (Some(n), None) => n.clone(),
                (None, Some(s)) => s.clone(),
                (None, None) => format!("alert {}", prep.fingerprint),
            };
            let incident = CreateIncidentRequested {
                source: "alertmanager",
                fingerprint: &prep.fingerprint,
                severity,
                title,
                labels: &alert.labels,
                annotations: &alert.annotations,
                starts_at: &alert.starts_at,
                generator_url: &alert.generator_url,
                alert_idempotency_key: &idempotency_key,
                received_at: &received_at,
            };
            out.push(IntentRecord::new(
                meta(
                    IntentType::CreateIncidentRequested,
                    format!("am-incident:{}:{}", prep.fingerprint, alert.starts_at),
                ),
                &incident,
            )?);
        }
    }
    Ok(out)
}
