//! DynamoDB (API 2012-08-10) without I/O: attribute values and exact numbers
//! (`attr.rs`, `number.rs`), expressions parsed and evaluated (`expr.rs`), tables and
//! their keys (`table.rs`), and what each request asks (`request` functions here). The
//! node stores the items and calls these.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::AwsError;
use crate::value::{Input, Value};

pub mod attr;
pub mod expr;
pub mod number;
pub mod table;

pub use attr::{Attr, Item};
pub use expr::{Action, Cond, Path};
pub use table::TableDef;

/// The `X-Amz-Target` prefix of DynamoDB's operations.
pub const TARGET: &str = "DynamoDB_20120810";

/// The largest item DynamoDB stores.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The most data one Query or Scan page reads.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;

pub fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationException", message)
}

/// A table that is not there: what item operations answer.
pub fn not_found() -> AwsError {
    AwsError::new(
        400,
        "ResourceNotFoundException",
        "Requested resource not found",
    )
}

/// What `DescribeTable` and `DeleteTable` answer for a table that is not there.
pub fn table_not_found(name: &str) -> AwsError {
    AwsError::new(
        400,
        "ResourceNotFoundException",
        format!("Requested resource not found: Table: {name} not found"),
    )
}

pub fn in_use(name: &str) -> AwsError {
    AwsError::new(
        400,
        "ResourceInUseException",
        format!("Table already exists: {name}"),
    )
}

pub fn conditional_failed() -> AwsError {
    AwsError::new(
        400,
        "ConditionalCheckFailedException",
        "The conditional request failed",
    )
}

/// A map of attribute values from a request member (`Item`, `Key`...).
pub fn item(input: &Input, name: &str) -> Result<Option<Item>, AwsError> {
    match input.get(name) {
        None => Ok(None),
        Some(v) => attr::item_from_value(v).map(Some).map_err(validation),
    }
}

/// What a request's expressions say, parsed, names and values substituted.
#[derive(Debug, Default)]
pub struct Expressions {
    pub condition: Option<Cond>,
    pub filter: Option<Cond>,
    pub key_condition: Option<Cond>,
    pub update: Option<Vec<Action>>,
    pub projection: Option<Vec<Path>>,
}

const LEGACY: [&str; 6] = [
    "Expected",
    "AttributeUpdates",
    "KeyConditions",
    "QueryFilter",
    "ScanFilter",
    "ConditionalOperator",
];

/// Reads and parses every expression a request carries, and refuses names and values
/// that none of them use.
pub fn expressions(input: &Input) -> Result<Expressions, AwsError> {
    for legacy in LEGACY {
        if input.get(legacy).is_some() {
            return Err(validation(format!(
                "bellows does not implement the legacy parameter {legacy}: use expressions (ConditionExpression, UpdateExpression, KeyConditionExpression, FilterExpression)"
            )));
        }
    }
    let names: BTreeMap<String, String> = match input.get("ExpressionAttributeNames") {
        None => BTreeMap::new(),
        Some(v) => v
            .members()
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s))
                    .ok_or_else(|| validation("ExpressionAttributeNames must map names to strings"))
            })
            .collect::<Result<_, _>>()?,
    };
    let values = item(input, "ExpressionAttributeValues")?;
    if values.as_ref().is_some_and(BTreeMap::is_empty) {
        return Err(validation("ExpressionAttributeValues must not be empty"));
    }
    let values = values.unwrap_or_default();
    let mut scope = expr::Scope::new(&names, &values);
    let mut out = Expressions::default();
    let mut any = false;
    let text = |name: &str| input.opt_str(name);
    if let Some(t) = text("ConditionExpression")? {
        any = true;
        out.condition =
            Some(expr::parse_condition("ConditionExpression", &t, &mut scope).map_err(validation)?);
    }
    if let Some(t) = text("FilterExpression")? {
        any = true;
        out.filter =
            Some(expr::parse_condition("FilterExpression", &t, &mut scope).map_err(validation)?);
    }
    if let Some(t) = text("KeyConditionExpression")? {
        any = true;
        out.key_condition = Some(
            expr::parse_condition("KeyConditionExpression", &t, &mut scope).map_err(validation)?,
        );
    }
    if let Some(t) = text("UpdateExpression")? {
        any = true;
        out.update = Some(expr::parse_update(&t, &mut scope).map_err(validation)?);
    }
    if let Some(t) = text("ProjectionExpression")? {
        any = true;
        out.projection = Some(expr::parse_projection(&t, &mut scope).map_err(validation)?);
    }
    if input.get("AttributesToGet").is_some() {
        if out.projection.is_some() {
            return Err(validation(
                "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {AttributesToGet} Expression parameters: {ProjectionExpression}",
            ));
        }
        let names = input.strings("AttributesToGet")?;
        out.projection = Some(
            names
                .into_iter()
                .map(|n| Path(vec![expr::Step::Key(n)]))
                .collect(),
        );
    }
    if !any && !names.is_empty() {
        return Err(validation(
            "ExpressionAttributeNames can only be specified when using expressions",
        ));
    }
    if !any && !values.is_empty() {
        return Err(validation(
            "ExpressionAttributeValues can only be specified when using expressions",
        ));
    }
    scope.check_all_used().map_err(validation)?;
    Ok(out)
}

/// A request's `ReturnValues`, one of `allowed`, `NONE` when absent.
pub fn return_values(input: &Input, allowed: &[&str]) -> Result<String, AwsError> {
    let rv = input
        .opt_str("ReturnValues")?
        .unwrap_or_else(|| "NONE".to_owned());
    const ALL: [&str; 5] = ["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"];
    if !ALL.contains(&rv.as_str()) {
        return Err(validation(format!(
            "1 validation error detected: Value '{rv}' at 'returnValues' failed to satisfy constraint: Member must satisfy enum value set: [ALL_NEW, UPDATED_OLD, ALL_OLD, NONE, UPDATED_NEW]"
        )));
    }
    if !allowed.contains(&rv.as_str()) {
        return Err(validation("Return values set to invalid value"));
    }
    Ok(rv)
}

/// The `Attributes` a write answers with for its `ReturnValues`.
pub fn returned(
    rv: &str,
    old: Option<&Item>,
    new: Option<&Item>,
    touched: &BTreeSet<String>,
) -> Option<Item> {
    let only = |i: &Item| -> Item {
        i.iter()
            .filter(|(k, _)| touched.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let out = match rv {
        "ALL_OLD" => old.cloned(),
        "ALL_NEW" => new.cloned(),
        "UPDATED_OLD" => old.map(only),
        "UPDATED_NEW" => new.map(only),
        _ => None,
    }?;
    (!out.is_empty()).then_some(out)
}

/// Checks a condition against the item as stored (none is an empty item).
pub fn check(cond: Option<&Cond>, item: Option<&Item>) -> Result<(), AwsError> {
    let Some(cond) = cond else { return Ok(()) };
    let empty = Item::new();
    if expr::eval(cond, item.unwrap_or(&empty)).map_err(validation)? {
        Ok(())
    } else {
        Err(conditional_failed())
    }
}

/// Refuses an item over DynamoDB's 400 KB.
pub fn check_size(item: &Item) -> Result<usize, AwsError> {
    let size = attr::item_size(item);
    if size > MAX_ITEM_BYTES {
        return Err(validation(
            "Item size has exceeded the maximum allowed size",
        ));
    }
    Ok(size)
}

/// Capacity units of a write of `bytes` (1 KB each) and a read (4 KB each, half for an
/// eventually consistent one).
pub fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

pub fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = bytes.div_ceil(4096).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

/// An item for the wire.
pub fn item_value(item: &Item) -> Value {
    attr::item_to_value(item)
}

/// An item as stored: its wire JSON.
pub fn encode_item(item: &Item) -> String {
    String::from_utf8(crate::json::encode(&item_value(item))).unwrap_or_default()
}

/// A stored item read back.
pub fn decode_item(text: &str) -> Result<Item, String> {
    let v = crate::json::decode(text.as_bytes())?;
    attr::item_from_value(&v)
}
