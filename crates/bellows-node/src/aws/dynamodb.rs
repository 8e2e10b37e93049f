//! DynamoDB (2012-08-10): tables and items in `tables.rs`'s store, every rule of the
//! API in `bellows_aws::dynamodb`. Item operations do not go through the loop (items are
//! not the stack's state); table changes are noted in the audit trail as AWS calls.

use std::collections::BTreeSet;

use bellows_aws::dynamodb::{self as ddb, Item, TableDef, expr, validation};
use bellows_aws::{AwsError, Input, Value};

use super::Ctx;
use crate::api::Call;
use crate::clock;
use crate::tables::{Key, Tables, Write};

pub(super) async fn handle(ctx: &Ctx<'_>, action: &str) -> Option<Result<Value, AwsError>> {
    let known = [
        "CreateTable",
        "DescribeTable",
        "ListTables",
        "DeleteTable",
        "UpdateTable",
        "PutItem",
        "GetItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "TransactGetItems",
        "DescribeEndpoints",
        "DescribeTimeToLive",
        "ListTagsOfResource",
        "DescribeContinuousBackups",
        "TagResource",
        "UntagResource",
    ];
    if !known.contains(&action) {
        return None;
    }
    let tables = ctx.face.tables.clone();
    let input = ctx.input().clone();
    let region = ctx.face.endpoint.region.clone();
    let action_owned = action.to_owned();
    let started = clock::instant();
    let result = tokio::task::spawn_blocking(move || run(&tables, &region, &action_owned, &input))
        .await
        .unwrap_or_else(|e| Err(AwsError::new(500, "InternalServerError", e.to_string())));
    let (value, effect) = match result {
        Ok((v, effect)) => (Ok(v), effect),
        Err(e) => (Err(e), Effect::default()),
    };
    let table = ctx
        .input()
        .opt_str("TableName")
        .ok()
        .flatten()
        .unwrap_or_default();
    if value.is_ok() {
        ctx.face.dynamo_metrics.record(
            &effect.units,
            &table,
            action,
            clock::instant().duration_since(started).as_secs_f64() * 1000.0,
        );
    }
    if matches!(action, "CreateTable" | "DeleteTable" | "UpdateTable") {
        let after = match &value {
            Ok(v) => {
                serde_json::from_slice(&bellows_aws::protocol::json_body(v)).unwrap_or_default()
            }
            Err(e) => serde_json::json!({ "error": e.code, "message": e.message }),
        };
        let actor = ctx.actor();
        let ok = value.is_ok();
        let _ = ctx
            .ask(|reply| Call::Note {
                actor,
                action: action.to_owned(),
                target: format!("table/{table}"),
                after,
                ok,
                reply,
            })
            .await;
    }
    Some(value)
}

/// What a call consumed, for the `AWS/DynamoDB` metrics.
#[derive(Debug, Default, Clone)]
pub struct Effect {
    /// Per table: read and write capacity units.
    pub units: Vec<(String, f64, f64)>,
}

impl Effect {
    fn read(table: &str, units: f64) -> Effect {
        Effect {
            units: vec![(table.to_owned(), units, 0.0)],
        }
    }

    fn write(table: &str, units: f64) -> Effect {
        Effect {
            units: vec![(table.to_owned(), 0.0, units)],
        }
    }
}

type Answer = Result<(Value, Effect), AwsError>;

fn run(tables: &Tables, region: &str, action: &str, input: &Input) -> Answer {
    match action {
        "CreateTable" => create_table(tables, region, input),
        "DescribeTable" => describe_table(tables, region, input),
        "ListTables" => list_tables(tables, input),
        "DeleteTable" => delete_table(tables, region, input),
        "UpdateTable" => update_table(tables, region, input),
        "PutItem" => put_item(tables, input),
        "GetItem" => get_item(tables, input),
        "UpdateItem" => update_item(tables, input),
        "DeleteItem" => delete_item(tables, input),
        "Query" => query(tables, input),
        "Scan" => scan(tables, input),
        "BatchGetItem" => batch_get(tables, input),
        "BatchWriteItem" => batch_write(tables, input),
        "TransactWriteItems" => transact_write(tables, input),
        "TransactGetItems" => transact_get(tables, input),
        "DescribeEndpoints" => Ok((
            Value::object().with(
                "Endpoints",
                Value::List(vec![
                    Value::object()
                        .with("Address", format!("dynamodb.{region}.amazonaws.com"))
                        .with("CachePeriodInMinutes", 1440i64),
                ]),
            ),
            Effect::default(),
        )),
        "DescribeTimeToLive" => {
            table(tables, &input.str("TableName")?)?;
            Ok((
                Value::object().with(
                    "TimeToLiveDescription",
                    Value::object().with("TimeToLiveStatus", "DISABLED"),
                ),
                Effect::default(),
            ))
        }
        "ListTagsOfResource" => {
            let name = arn_table(tables, &input.str("ResourceArn")?)?;
            let tags = tables
                .tags(&name)?
                .into_iter()
                .map(|(k, v)| Value::object().with("Key", k).with("Value", v))
                .collect();
            Ok((
                Value::object().with("Tags", Value::List(tags)),
                Effect::default(),
            ))
        }
        "TagResource" => {
            let name = arn_table(tables, &input.str("ResourceArn")?)?;
            tables.tag(&name, &tags_in(input)?)?;
            Ok((Value::object(), Effect::default()))
        }
        "UntagResource" => {
            let name = arn_table(tables, &input.str("ResourceArn")?)?;
            tables.untag(&name, &input.strings("TagKeys")?)?;
            Ok((Value::object(), Effect::default()))
        }
        _ => Ok((
            Value::object().with(
                "ContinuousBackupsDescription",
                Value::object()
                    .with("ContinuousBackupsStatus", "DISABLED")
                    .with(
                        "PointInTimeRecoveryDescription",
                        Value::object().with("PointInTimeRecoveryStatus", "DISABLED"),
                    ),
            ),
            Effect::default(),
        )),
    }
}

fn table(tables: &Tables, name: &str) -> Result<TableDef, AwsError> {
    tables.def(name)?.ok_or_else(ddb::not_found)
}

/// A table's id; a random source that cannot be read fails the call (an
/// InternalServerError), as every token of bellows does, rather than naming it zeros.
fn uuid() -> Result<String, AwsError> {
    let hex = crate::token::random_hex::<16>()
        .map_err(|e| AwsError::new(500, "InternalServerError", e.to_string()))?;
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// The table a `ResourceArn` (`arn:aws:dynamodb:REGION:ACCOUNT:table/NAME`) names, which
/// must exist.
fn arn_table(tables: &Tables, arn: &str) -> Result<String, AwsError> {
    let name = arn
        .split_once(":table/")
        .map(|(_, n)| n.split('/').next().unwrap_or_default().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| validation(format!("Invalid TableArn: {arn}")))?;
    table(tables, &name)?;
    Ok(name)
}

/// `Tags` as (key, value) pairs.
fn tags_in(input: &Input) -> Result<Vec<(String, String)>, AwsError> {
    input
        .list("Tags")
        .iter()
        .map(|t| Ok((t.str("Key")?, t.opt_str("Value")?.unwrap_or_default())))
        .collect()
}

fn create_table(tables: &Tables, region: &str, input: &Input) -> Answer {
    let created = clock::now().as_millis() as f64 / 1000.0;
    let def = TableDef::from_create(input, created, uuid()?)?;
    tables.create(&def)?;
    tables.tag(&def.name, &tags_in(input)?)?;
    // DynamoDB answers CREATING and the table turns ACTIVE after a while; here it is
    // ACTIVE at once, as the next DescribeTable shows.
    Ok((
        Value::object().with("TableDescription", def.describe(region, "CREATING", 0, 0)),
        Effect::default(),
    ))
}

fn describe_table(tables: &Tables, region: &str, input: &Input) -> Answer {
    let name = input.str("TableName")?;
    let s = tables
        .stats(&name)?
        .ok_or_else(|| ddb::table_not_found(&name))?;
    Ok((
        Value::object().with("Table", s.def.describe(region, "ACTIVE", s.items, s.bytes)),
        Effect::default(),
    ))
}

fn list_tables(tables: &Tables, input: &Input) -> Answer {
    let limit = input.opt_i64("Limit")?.unwrap_or(100);
    if !(1..=100).contains(&limit) {
        return Err(validation(format!(
            "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 100"
        )));
    }
    let start = input.opt_str("ExclusiveStartTableName")?;
    let names: Vec<String> = tables
        .names()?
        .into_iter()
        .filter(|n| start.as_ref().is_none_or(|s| n.as_str() > s.as_str()))
        .collect();
    let page: Vec<String> = names.iter().take(limit as usize).cloned().collect();
    let mut out = Value::object().with("TableNames", Value::from(page.clone()));
    if names.len() > page.len() {
        out.set("LastEvaluatedTableName", page.last().cloned());
    }
    Ok((out, Effect::default()))
}

fn delete_table(tables: &Tables, region: &str, input: &Input) -> Answer {
    let name = input.str("TableName")?;
    let s = tables
        .delete(&name)?
        .ok_or_else(|| ddb::table_not_found(&name))?;
    Ok((
        Value::object().with(
            "TableDescription",
            s.def.describe(region, "DELETING", s.items, s.bytes),
        ),
        Effect::default(),
    ))
}

fn update_table(tables: &Tables, region: &str, input: &Input) -> Answer {
    let name = input.str("TableName")?;
    let s = tables
        .stats(&name)?
        .ok_or_else(|| ddb::table_not_found(&name))?;
    let def = s.def.updated(input)?;
    tables.update(&def)?;
    Ok((
        Value::object().with(
            "TableDescription",
            def.describe(region, "ACTIVE", s.items, s.bytes),
        ),
        Effect::default(),
    ))
}

fn consumed(input: &Input, table: &str, units: f64, out: &mut Value) -> Result<(), AwsError> {
    match input.opt_str("ReturnConsumedCapacity")?.as_deref() {
        None | Some("NONE") => {}
        Some(_) => out.set(
            "ConsumedCapacity",
            Value::object()
                .with("TableName", table)
                .with("CapacityUnits", units),
        ),
    }
    Ok(())
}

fn attributes(out: &mut Value, item: Option<Item>) {
    if let Some(item) = item {
        out.set("Attributes", ddb::item_value(&item));
    }
}

fn put_item(tables: &Tables, input: &Input) -> Answer {
    let name = input.str("TableName")?;
    let def = table(tables, &name)?;
    let exprs = ddb::expressions(input)?;
    if exprs.update.is_some() || exprs.projection.is_some() || exprs.filter.is_some() {
        return Err(validation("PutItem takes only a ConditionExpression"));
    }
    let rv = ddb::return_values(input, &["NONE", "ALL_OLD"])?;
    let item = ddb::item(input, "Item")?.ok_or_else(|| {
        validation("1 validation error detected: Value null at 'item' failed to satisfy constraint: Member must not be null")
    })?;
    let key = def.item_key(&item).map_err(validation)?;
    let size = ddb::check_size(&item)?;
    let old = tables.modify(&name, &key, |old| {
        ddb::check(exprs.condition.as_ref(), old)?;
        Ok((Some((item, size)), old.cloned()))
    })?;
    let units = ddb::write_units(size);
    let mut out = Value::object();
    attributes(
        &mut out,
        ddb::returned(&rv, old.as_ref(), None, &BTreeSet::new()),
    );
    consumed(input, &name, units, &mut out)?;
    Ok((out, Effect::write(&name, units)))
}

fn key_of(def: &TableDef, input: &Input) -> Result<(Item, Key), AwsError> {
    let key = ddb::item(input, "Key")?.ok_or_else(|| {
        validation("1 validation error detected: Value null at 'key' failed to satisfy constraint: Member must not be null")
    })?;
    let bytes = def.key(&key).map_err(validation)?;
    Ok((key, bytes))
}

fn get_item(tables: &Tables, input: &Input) -> Answer {
    let name = input.str("TableName")?;
    let def = table(tables, &name)?;
    let exprs = ddb::expressions(input)?;
    if exprs.condition.is_some() || exprs.update.is_some() || exprs.filter.is_some() {
        return Err(validation("GetItem takes only a ProjectionExpression"));
    }
    let (_, key) = key_of(&def, input)?;
    let consistent = input.opt_bool("ConsistentRead")?.unwrap_or(false);
    let item = tables.get(&name, &key)?;
    let size = item
        .as_ref()
        .map_or(0, bellows_aws::dynamodb::attr::item_size);
    let units = ddb::read_units(size, consistent);
    let mut out = Value::object();
    if let Some(item) = item {
        let item = match &exprs.projection {
            Some(p) => expr::project(&item, p),
            None => item,
        };
        out.set("Item", ddb::item_value(&item));
    }
    consumed(input, &name, units, &mut out)?;
    Ok((out, Effect::read(&name, units)))
}

fn update_item(tables: &Tables, input: &Input) -> Answer {
    let name = input.str("TableName")?;
    let def = table(tables, &name)?;
    let exprs = ddb::expressions(input)?;
    if exprs.projection.is_some() || exprs.filter.is_some() {
        return Err(validation(
            "UpdateItem takes an UpdateExpression and a ConditionExpression",
        ));
    }
    let rv = ddb::return_values(
        input,
        &["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"],
    )?;
    let (key_item, key) = key_of(&def, input)?;
    let actions = exprs.update.unwrap_or_default();
    check_not_key(&def, &actions)?;
    let touched = expr::touched(&actions);
    let (old, new, size) = tables.modify(&name, &key, |old| {
        ddb::check(exprs.condition.as_ref(), old)?;
        let base = old.cloned().unwrap_or_else(|| key_item.clone());
        let new = expr::apply(&actions, &base).map_err(validation)?;
        let size = ddb::check_size(&new)?;
        Ok((Some((new.clone(), size)), (old.cloned(), new, size)))
    })?;
    let units = ddb::write_units(size);
    let mut out = Value::object();
    attributes(
        &mut out,
        ddb::returned(&rv, old.as_ref(), Some(&new), &touched),
    );
    consumed(input, &name, units, &mut out)?;
    Ok((out, Effect::write(&name, units)))
}

/// An update may not touch the key.
fn check_not_key(def: &TableDef, actions: &[ddb::Action]) -> Result<(), AwsError> {
    for a in actions {
        let path = match a {
            ddb::Action::Set(p, _)
            | ddb::Action::Remove(p)
            | ddb::Action::Add(p, _)
            | ddb::Action::Delete(p, _) => p,
        };
        if def.is_key(path.head()) {
            return Err(validation(format!(
                "One or more parameter values were invalid: Cannot update attribute {}. This attribute is part of the key",
                path.head()
            )));
        }
    }
    Ok(())
}

fn delete_item(tables: &Tables, input: &Input) -> Answer {
    let name = input.str("TableName")?;
    let def = table(tables, &name)?;
    let exprs = ddb::expressions(input)?;
    if exprs.update.is_some() || exprs.projection.is_some() || exprs.filter.is_some() {
        return Err(validation("DeleteItem takes only a ConditionExpression"));
    }
    let rv = ddb::return_values(input, &["NONE", "ALL_OLD"])?;
    let (_, key) = key_of(&def, input)?;
    let old = tables.modify(&name, &key, |old| {
        ddb::check(exprs.condition.as_ref(), old)?;
        Ok((None, old.cloned()))
    })?;
    let size = old
        .as_ref()
        .map_or(0, bellows_aws::dynamodb::attr::item_size);
    let units = ddb::write_units(size);
    let mut out = Value::object();
    attributes(
        &mut out,
        ddb::returned(&rv, old.as_ref(), None, &BTreeSet::new()),
    );
    consumed(input, &name, units, &mut out)?;
    Ok((out, Effect::write(&name, units)))
}

fn limit(input: &Input) -> Result<usize, AwsError> {
    match input.opt_i64("Limit")? {
        None => Ok(1_000_000),
        Some(n) if n >= 1 => Ok(n.min(1_000_000) as usize),
        Some(n) => Err(validation(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
        ))),
    }
}

/// A page's answer: the items that pass the filter, projected, with the counts and the
/// key to go on from.
fn page_answer(
    def: &TableDef,
    input: &Input,
    exprs: &ddb::Expressions,
    scanned: Vec<(Item, usize)>,
    more: bool,
) -> Answer {
    let select = input.opt_str("Select")?.unwrap_or_default();
    let count_only = select == "COUNT";
    let consistent = input.opt_bool("ConsistentRead")?.unwrap_or(false);
    let bytes: usize = scanned.iter().map(|(_, s)| *s).sum();
    let scanned_count = scanned.len();
    let last = scanned.last().map(|(i, _)| def.key_of(i));
    let mut items = Vec::new();
    for (item, _) in scanned {
        if let Some(f) = &exprs.filter
            && !expr::eval(f, &item).map_err(validation)?
        {
            continue;
        }
        items.push(match &exprs.projection {
            Some(p) => expr::project(&item, p),
            None => item,
        });
    }
    let units = ddb::read_units(bytes, consistent);
    let mut out = Value::object();
    if !count_only {
        out.set(
            "Items",
            Value::List(items.iter().map(ddb::item_value).collect()),
        );
    }
    out.set("Count", items.len());
    out.set("ScannedCount", scanned_count);
    if more && let Some(last) = last {
        out.set("LastEvaluatedKey", ddb::item_value(&last));
    }
    consumed(input, &def.name, units, &mut out)?;
    Ok((out, Effect::read(&def.name, units)))
}

fn check_index(input: &Input) -> Result<(), AwsError> {
    if let Some(index) = input.opt_str("IndexName")? {
        return Err(validation(format!(
            "The table does not have the specified index: {index}"
        )));
    }
    Ok(())
}

fn query(tables: &Tables, input: &Input) -> Answer {
    let name = input.str("TableName")?;
    let def = table(tables, &name)?;
    check_index(input)?;
    let exprs = ddb::expressions(input)?;
    let kc = exprs.key_condition.as_ref().ok_or_else(|| {
        validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
    })?;
    if exprs.condition.is_some() || exprs.update.is_some() {
        return Err(validation(
            "Query takes a KeyConditionExpression, a FilterExpression and a ProjectionExpression",
        ));
    }
    let kc = def.key_condition(kc).map_err(validation)?;
    if let Some(f) = &exprs.filter {
        key_in_filter(&def, f)?;
    }
    let limit = limit(input)?;
    let forward = input.opt_bool("ScanIndexForward")?.unwrap_or(true);
    let start = ddb::item(input, "ExclusiveStartKey")?;
    let after = match &start {
        None => None,
        Some(start) => {
            let (pk, sk) = def.key(start).map_err(|_| validation("The provided starting key is invalid: The provided key element does not match the schema"))?;
            if pk != kc.partition {
                return Err(validation(
                    "The provided starting key is outside query boundaries based on provided conditions",
                ));
            }
            Some(sk)
        }
    };
    let range = def.range.as_ref().zip(kc.range.as_ref());
    let (page, more) = tables.query(
        &name,
        &kc.partition,
        crate::tables::QueryPage {
            forward,
            after: after.as_deref(),
            limit,
            max_bytes: ddb::MAX_PAGE_BYTES,
        },
        |item| range.is_none_or(|(r, cond)| item.get(&r.name).is_some_and(|v| cond.matches(v))),
    )?;
    page_answer(&def, input, &exprs, page, more)
}

/// A filter may not name the key attributes of a query.
fn key_in_filter(def: &TableDef, f: &ddb::Cond) -> Result<(), AwsError> {
    let text = format!("{f:?}");
    for k in std::iter::once(&def.hash).chain(def.range.as_ref()) {
        if text.contains(&format!("Key({:?})", k.name)) {
            return Err(validation(format!(
                "Filter Expression can only contain non-primary key attributes: Primary key attribute: {}",
                k.name
            )));
        }
    }
    Ok(())
}

fn scan(tables: &Tables, input: &Input) -> Answer {
    let name = input.str("TableName")?;
    let def = table(tables, &name)?;
    check_index(input)?;
    if input.get("Segment").is_some() || input.get("TotalSegments").is_some() {
        let total = input.opt_i64("TotalSegments")?.unwrap_or(1);
        let segment = input.opt_i64("Segment")?.unwrap_or(0);
        if total != 1 || segment != 0 {
            return Err(validation(
                "bellows scans in one segment: TotalSegments must be 1",
            ));
        }
    }
    let exprs = ddb::expressions(input)?;
    if exprs.condition.is_some() || exprs.update.is_some() || exprs.key_condition.is_some() {
        return Err(validation(
            "Scan takes a FilterExpression and a ProjectionExpression",
        ));
    }
    let limit = limit(input)?;
    let start = match ddb::item(input, "ExclusiveStartKey")? {
        None => None,
        Some(k) => Some(def.key(&k).map_err(|_| {
            validation("The provided starting key is invalid: The provided key element does not match the schema")
        })?),
    };
    let page = tables.scan(&name, start.as_ref(), limit, ddb::MAX_PAGE_BYTES)?;
    let more = page.more || page.items.len() == limit;
    let items = page
        .items
        .into_iter()
        .map(|i| {
            let s = bellows_aws::dynamodb::attr::item_size(&i);
            (i, s)
        })
        .collect();
    page_answer(&def, input, &exprs, items, more)
}

fn batch_get(tables: &Tables, input: &Input) -> Answer {
    let request = input.nested("RequestItems");
    let members = request.root().members().to_vec();
    if members.is_empty() {
        return Err(validation(
            "1 validation error detected: Value null at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    let total: usize = members
        .iter()
        .map(|(_, v)| v.get("Keys").map_or(0, |k| k.items().len()))
        .sum();
    if total > 100 {
        return Err(validation(
            "Too many items requested for the BatchGetItem call",
        ));
    }
    let mut responses = Value::Map(Vec::new());
    let mut effect = Effect::default();
    for (name, _) in &members {
        let t = request.nested(name);
        let def = table(tables, name)?;
        let exprs = ddb::expressions(&t)?;
        let consistent = t.opt_bool("ConsistentRead")?.unwrap_or(false);
        let mut seen = BTreeSet::new();
        let mut found = Vec::new();
        let mut bytes = 0;
        for k in t.get("Keys").map(Value::items).unwrap_or_default() {
            let key = bellows_aws::dynamodb::attr::item_from_value(k).map_err(validation)?;
            let bytes_key = def.key(&key).map_err(validation)?;
            if !seen.insert(bytes_key.clone()) {
                return Err(validation("Provided list of item keys contains duplicates"));
            }
            if let Some(item) = tables.get(name, &bytes_key)? {
                bytes += bellows_aws::dynamodb::attr::item_size(&item);
                let item = match &exprs.projection {
                    Some(p) => expr::project(&item, p),
                    None => item,
                };
                found.push(ddb::item_value(&item));
            }
        }
        effect
            .units
            .push((name.clone(), ddb::read_units(bytes, consistent), 0.0));
        responses.set(name, Value::List(found));
    }
    Ok((
        Value::object()
            .with("Responses", responses)
            .with("UnprocessedKeys", Value::Map(Vec::new())),
        effect,
    ))
}

fn batch_write(tables: &Tables, input: &Input) -> Answer {
    let request = input.nested("RequestItems");
    let members = request.root().members().to_vec();
    if members.is_empty() {
        return Err(validation(
            "1 validation error detected: Value null at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    let mut writes = Vec::new();
    let mut effect = Effect::default();
    for (name, list) in &members {
        let def = table(tables, name)?;
        let mut units = 0.0;
        for w in list.items() {
            let put = w.get("PutRequest");
            let delete = w.get("DeleteRequest");
            let (key, item) = match (put, delete) {
                (Some(p), None) => {
                    let item = p
                        .get("Item")
                        .map(bellows_aws::dynamodb::attr::item_from_value)
                        .transpose()
                        .map_err(validation)?
                        .ok_or_else(|| validation("A PutRequest needs an Item"))?;
                    let key = def.item_key(&item).map_err(validation)?;
                    let size = ddb::check_size(&item)?;
                    units += ddb::write_units(size);
                    (key, Some((item, size)))
                }
                (None, Some(d)) => {
                    let key = d
                        .get("Key")
                        .map(bellows_aws::dynamodb::attr::item_from_value)
                        .transpose()
                        .map_err(validation)?
                        .ok_or_else(|| validation("A DeleteRequest needs a Key"))?;
                    units += 1.0;
                    (def.key(&key).map_err(validation)?, None)
                }
                _ => {
                    return Err(validation(
                        "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
                    ));
                }
            };
            if writes
                .iter()
                .any(|x: &Write| x.table == *name && x.key == key)
            {
                return Err(validation("Provided list of item keys contains duplicates"));
            }
            writes.push(Write {
                table: name.clone(),
                key,
                item,
            });
        }
        effect.units.push((name.clone(), 0.0, units));
    }
    if writes.len() > 25 {
        return Err(validation(format!(
            "1 validation error detected: Value '{{{}}}' at 'requestItems' failed to satisfy constraint: Member must have length less than or equal to 25",
            writes.len()
        )));
    }
    tables.write_all(&writes)?;
    Ok((
        Value::object().with("UnprocessedItems", Value::Map(Vec::new())),
        effect,
    ))
}

/// What one action of a TransactWriteItems does to its item.
enum TxOp {
    Check,
    Put(Item, usize),
    Delete,
    Update(Vec<ddb::Action>, Item),
}

struct TxStep {
    table: String,
    key: Key,
    condition: Option<ddb::Cond>,
    op: TxOp,
}

fn transact_items(input: &Input) -> Result<Vec<Input>, AwsError> {
    let items = input.list("TransactItems");
    if items.is_empty() {
        return Err(validation(
            "1 validation error detected: Value null at 'transactItems' failed to satisfy constraint: Member must not be null",
        ));
    }
    if items.len() > 100 {
        return Err(validation(format!(
            "1 validation error detected: Value '[{}]' at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to 100",
            items.len()
        )));
    }
    Ok(items)
}

/// TransactWriteItems: every condition checked, then every write, all in one
/// transaction; one failed condition cancels them all.
fn transact_write(tables: &Tables, input: &Input) -> Answer {
    let mut steps: Vec<TxStep> = Vec::new();
    for t in transact_items(input)? {
        let kinds: Vec<&str> = ["ConditionCheck", "Put", "Delete", "Update"]
            .into_iter()
            .filter(|k| t.get(k).is_some())
            .collect();
        let [kind] = kinds[..] else {
            return Err(validation(
                "TransactItems can only contain one of Check, Put, Update or Delete",
            ));
        };
        let inner = t.nested(kind);
        let table_name = inner.str("TableName")?;
        let def = table(tables, &table_name)?;
        let exprs = ddb::expressions(&inner)?;
        let (key, op) = match kind {
            "Put" => {
                let item =
                    ddb::item(&inner, "Item")?.ok_or_else(|| validation("A Put needs an Item"))?;
                let key = def.item_key(&item).map_err(validation)?;
                let size = ddb::check_size(&item)?;
                (key, TxOp::Put(item, size))
            }
            "Update" => {
                let (key_item, key) = key_of(&def, &inner)?;
                let actions = exprs
                    .update
                    .clone()
                    .ok_or_else(|| validation("An Update needs an UpdateExpression"))?;
                check_not_key(&def, &actions)?;
                (key, TxOp::Update(actions, key_item))
            }
            "Delete" => (key_of(&def, &inner)?.1, TxOp::Delete),
            _ => {
                if exprs.condition.is_none() {
                    return Err(validation("A ConditionCheck needs a ConditionExpression"));
                }
                (key_of(&def, &inner)?.1, TxOp::Check)
            }
        };
        if steps.iter().any(|s| s.table == table_name && s.key == key) {
            return Err(validation(
                "Transaction request cannot include multiple operations on one item",
            ));
        }
        steps.push(TxStep {
            table: table_name,
            key,
            condition: exprs.condition,
            op,
        });
    }
    let effect = tables.transact(|tx| {
        let mut olds = Vec::new();
        let mut reasons = Vec::new();
        for s in &steps {
            let old = tx.get(&s.table, &s.key)?;
            reasons.push(match ddb::check(s.condition.as_ref(), old.as_ref()) {
                Ok(()) => "None",
                Err(e) if e.code == "ConditionalCheckFailedException" => "ConditionalCheckFailed",
                Err(e) => return Err(e),
            });
            olds.push(old);
        }
        if reasons.iter().any(|r| *r != "None") {
            let mut e = AwsError::new(
                400,
                "TransactionCanceledException",
                format!(
                    "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                    reasons.join(", ")
                ),
            );
            e.cancellation_reasons = reasons
                .iter()
                .map(|r| {
                    let message = (*r != "None").then(|| "The conditional request failed".to_owned());
                    ((*r).to_owned(), message)
                })
                .collect();
            return Err(e);
        }
        let mut effect = Effect::default();
        for (s, old) in steps.iter().zip(olds) {
            let new = match &s.op {
                TxOp::Check => continue,
                TxOp::Put(item, size) => Some((item.clone(), *size)),
                TxOp::Delete => None,
                TxOp::Update(actions, key_item) => {
                    let base = old.unwrap_or_else(|| key_item.clone());
                    let new = expr::apply(actions, &base).map_err(validation)?;
                    let size = ddb::check_size(&new)?;
                    Some((new, size))
                }
            };
            // Transactions cost twice a plain write.
            let units = 2.0 * ddb::write_units(new.as_ref().map_or(0, |(_, s)| *s));
            effect.units.push((s.table.clone(), 0.0, units));
            tx.put(&s.table, &s.key, new.as_ref())?;
        }
        Ok(effect)
    })?;
    Ok((Value::object(), effect))
}

/// TransactGetItems: every item read in one transaction.
fn transact_get(tables: &Tables, input: &Input) -> Answer {
    let mut gets = Vec::new();
    for t in transact_items(input)? {
        if t.get("Get").is_none() {
            return Err(validation("TransactGetItems takes only Get actions"));
        }
        let inner = t.nested("Get");
        let table_name = inner.str("TableName")?;
        let def = table(tables, &table_name)?;
        let exprs = ddb::expressions(&inner)?;
        let key = key_of(&def, &inner)?.1;
        gets.push((table_name, key, exprs.projection));
    }
    let (responses, effect) = tables.transact(|tx| {
        let mut out = Vec::new();
        let mut effect = Effect::default();
        for (table_name, key, projection) in &gets {
            let item = tx.get(table_name, key)?;
            let size = item
                .as_ref()
                .map_or(0, bellows_aws::dynamodb::attr::item_size);
            effect
                .units
                .push((table_name.clone(), 2.0 * ddb::read_units(size, true), 0.0));
            out.push(match item {
                None => Value::object(),
                Some(i) => {
                    let i = match projection {
                        Some(p) => expr::project(&i, p),
                        None => i,
                    };
                    Value::object().with("Item", ddb::item_value(&i))
                }
            });
        }
        Ok((out, effect))
    })?;
    Ok((
        Value::object().with("Responses", Value::List(responses)),
        effect,
    ))
}
