//! The OpenAPI 3.1 description of the admin API, served at `GET /admin/openapi.json`.
//! Written by hand; a test checks that every mounted route appears in it.

use serde_json::{Map, Value, json};

/// Builds the OpenAPI document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tollgate admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Customers, billing terms, top-ups, payments, usage and invoices of a tollgate \
                proxy, read from and written to its Blnk ledger. Amounts of money are decimal strings \
                in US dollars (JSON numbers are rejected). Periods are half-open: `from` is included \
                and `to` excluded; each is a UTC date (YYYY-MM-DD, midnight UTC) or an RFC 3339 timestamp.",
        },
        "security": [{ "bearer": [] }],
        "paths": paths(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The value of TOLLGATE_ADMIN_TOKEN. Without it configured, every /admin route answers 404.",
                }
            },
            "parameters": parameters(),
            "responses": responses(),
            "schemas": schemas(),
        },
    })
}

fn paths() -> Value {
    json!({
        "/admin/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": {
                    "200": { "description": "The OpenAPI document", "content": { "application/json": {} } },
                    "401": { "$ref": "#/components/responses/Unauthorized" },
                },
            },
        },
        "/admin/prices/reload": {
            "post": {
                "operationId": "reloadPrices",
                "summary": "Reload the price file; on a bad file the previous prices stay in force",
                "responses": {
                    "200": json_response("PricesReloaded", "The new price table is in force"),
                    "401": { "$ref": "#/components/responses/Unauthorized" },
                    "422": error_response("The price file is invalid; the previous prices stay in force"),
                },
            },
        },
        "/admin/customers": {
            "post": {
                "operationId": "createCustomer",
                "summary": "Create a customer: identity, USD wallet and TOKENS balance. Repeating the same request changes nothing.",
                "requestBody": body_ref("NewCustomer"),
                "responses": {
                    "201": json_response("Created", "The customer was created"),
                    "200": json_response("Created", "The customer already existed with these terms"),
                    "400": { "$ref": "#/components/responses/Invalid" },
                    "401": { "$ref": "#/components/responses/Unauthorized" },
                    "409": { "$ref": "#/components/responses/Conflict" },
                    "502": { "$ref": "#/components/responses/LedgerError" },
                    "503": { "$ref": "#/components/responses/LedgerUnavailable" },
                },
            },
            "get": {
                "operationId": "listCustomers",
                "summary": "List every customer, sorted by id",
                "responses": {
                    "200": json_response("CustomerList", "The customers"),
                    "401": { "$ref": "#/components/responses/Unauthorized" },
                    "502": { "$ref": "#/components/responses/LedgerError" },
                    "503": { "$ref": "#/components/responses/LedgerUnavailable" },
                },
            },
        },
        "/admin/customers/{id}": {
            "get": {
                "operationId": "showCustomer",
                "summary": "Show a customer's terms, balance, held and available amounts, and outbox entries",
                "parameters": [{ "$ref": "#/components/parameters/CustomerId" }],
                "responses": customer_responses("CustomerDetail", "The customer"),
            },
        },
        "/admin/customers/{id}/terms": {
            "put": {
                "operationId": "setTerms",
                "summary": "Replace the billing terms. Other tollgate replicas apply them within blnk.account_cache_ttl (30 s by default).",
                "parameters": [{ "$ref": "#/components/parameters/CustomerId" }],
                "requestBody": body_ref("Terms"),
                "responses": customer_responses("Account", "The account with its new terms"),
            },
        },
        "/admin/customers/{id}/topups": {
            "post": {
                "operationId": "topUp",
                "summary": "Fund the wallet from the world balance; reference tg:topup:<id>:<reference>",
                "parameters": [{ "$ref": "#/components/parameters/CustomerId" }],
                "requestBody": body_ref("TopUp"),
                "responses": funding_responses(),
            },
        },
        "/admin/customers/{id}/payments": {
            "post": {
                "operationId": "recordPayment",
                "summary": "Record a payment of a postpaid invoice; reference tg:pay:<id>:<reference>",
                "parameters": [{ "$ref": "#/components/parameters/CustomerId" }],
                "requestBody": body_ref("Payment"),
                "responses": funding_responses(),
            },
        },
        "/admin/customers/{id}/usage": {
            "get": {
                "operationId": "getUsage",
                "summary": "Usage in a period, grouped by billed model",
                "parameters": period_parameters(),
                "responses": customer_responses("UsageReport", "The usage lines"),
            },
        },
        "/admin/customers/{id}/invoice": {
            "get": {
                "operationId": "getInvoice",
                "summary": "The invoice of a period, checked against Blnk's balance history",
                "parameters": period_parameters(),
                "responses": {
                    "200": json_response("Invoice", "The invoice, with exact amounts"),
                    "400": { "$ref": "#/components/responses/Invalid" },
                    "401": { "$ref": "#/components/responses/Unauthorized" },
                    "404": { "$ref": "#/components/responses/NotFound" },
                    "500": { "$ref": "#/components/responses/Unbalanced" },
                    "502": { "$ref": "#/components/responses/LedgerError" },
                    "503": { "$ref": "#/components/responses/LedgerUnavailable" },
                },
            },
        },
    })
}

fn body_ref(schema: &str) -> Value {
    json!({
        "required": true,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } },
    })
}

fn json_response(schema: &str, description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } },
    })
}

fn customer_responses(schema: &str, description: &str) -> Value {
    json!({
        "200": json_response(schema, description),
        "400": { "$ref": "#/components/responses/Invalid" },
        "401": { "$ref": "#/components/responses/Unauthorized" },
        "404": { "$ref": "#/components/responses/NotFound" },
        "502": { "$ref": "#/components/responses/LedgerError" },
        "503": { "$ref": "#/components/responses/LedgerUnavailable" },
    })
}

fn funding_responses() -> Value {
    json!({
        "201": json_response("Funded", "The transaction was recorded"),
        "200": json_response("Funded", "This reference was already recorded with the same amount; nothing changed"),
        "400": { "$ref": "#/components/responses/Invalid" },
        "401": { "$ref": "#/components/responses/Unauthorized" },
        "404": { "$ref": "#/components/responses/NotFound" },
        "409": { "$ref": "#/components/responses/Conflict" },
        "502": { "$ref": "#/components/responses/LedgerError" },
        "503": { "$ref": "#/components/responses/LedgerUnavailable" },
    })
}

fn period_parameters() -> Value {
    json!([
        { "$ref": "#/components/parameters/CustomerId" },
        { "$ref": "#/components/parameters/From" },
        { "$ref": "#/components/parameters/To" },
    ])
}

fn parameters() -> Value {
    json!({
        "CustomerId": {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": { "$ref": "#/components/schemas/CustomerIdText" },
        },
        "From": {
            "name": "from",
            "in": "query",
            "required": true,
            "description": "Start of the period, included: YYYY-MM-DD (midnight UTC) or RFC 3339",
            "schema": { "type": "string", "examples": ["2026-05-01"] },
        },
        "To": {
            "name": "to",
            "in": "query",
            "required": true,
            "description": "End of the period, excluded: YYYY-MM-DD (midnight UTC) or RFC 3339",
            "schema": { "type": "string", "examples": ["2026-06-01"] },
        },
    })
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
    })
}

fn responses() -> Value {
    json!({
        "Invalid": error_response("Invalid input: a malformed id, amount, period, reference or body"),
        "Unauthorized": error_response("Missing or wrong bearer token"),
        "NotFound": error_response("No customer with this id"),
        "Conflict": error_response("The customer exists with other terms, or the reference was used for another amount"),
        "Unbalanced": error_response("The invoice does not balance against Blnk's history; compute it again"),
        "LedgerError": error_response("Blnk rejected or garbled a call"),
        "LedgerUnavailable": error_response("Blnk cannot be reached; retry later"),
    })
}

fn schemas() -> Value {
    let mut all = Map::new();
    for group in [request_schemas(), account_schemas(), statement_schemas()] {
        if let Value::Object(fields) = group {
            all.extend(fields);
        }
    }
    Value::Object(all)
}

/// Builds the schema of an exact, possibly negative amount of US dollars in a response.
fn money() -> Value {
    json!({
        "type": "string",
        "pattern": "^-?[0-9]+(\\.[0-9]+)?$",
        "description": "US dollars, exact",
        "examples": ["12.5"],
    })
}

fn optional_money() -> Value {
    json!({ "oneOf": [money(), { "type": "null" }] })
}

/// Builds the schema of a positive amount of US dollars in a request.
fn amount_field() -> Value {
    json!({
        "type": "string",
        "pattern": "^[0-9]+(\\.[0-9]{1,9})?$",
        "description": "US dollars as a decimal string with at most 9 decimal places; JSON numbers are rejected",
        "examples": ["12.50"],
    })
}

fn time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn text() -> Value {
    json!({ "type": "string" })
}

fn count() -> Value {
    json!({ "type": "integer" })
}

fn request_schemas() -> Value {
    let reference = json!({
        "type": "string",
        "pattern": "^[A-Za-z0-9._:-]{1,128}$",
        "description": "Idempotency reference; must not end in _q, _refund or _<number>",
    });
    let billing = json!({ "enum": ["prepaid", "postpaid"] });
    json!({
        "CustomerIdText": { "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$" },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message", "type", "code"],
                    "properties": { "message": text(), "type": text(), "code": text() },
                },
            },
        },
        "NewCustomer": {
            "type": "object",
            "required": ["id", "billing"],
            "additionalProperties": false,
            "properties": {
                "id": { "$ref": "#/components/schemas/CustomerIdText" },
                "name": text(),
                "billing": billing,
                "credit_limit_usd": amount_field(),
            },
        },
        "Terms": {
            "type": "object",
            "required": ["billing"],
            "additionalProperties": false,
            "properties": { "billing": billing, "credit_limit_usd": amount_field() },
        },
        "TopUp": {
            "type": "object",
            "required": ["amount_usd"],
            "additionalProperties": false,
            "properties": { "amount_usd": amount_field(), "reference": reference },
        },
        "Payment": {
            "type": "object",
            "required": ["amount_usd", "reference"],
            "additionalProperties": false,
            "properties": { "amount_usd": amount_field(), "reference": reference },
        },
    })
}

fn account_schemas() -> Value {
    let billing = json!({ "enum": ["prepaid", "postpaid"] });
    let outbox = json!({
        "type": "object",
        "properties": {
            "pending": count(),
            "dead": count(),
            "oldest_pending": { "type": ["string", "null"], "format": "date-time" },
        },
    });
    let summary = json!({
        "type": "object",
        "properties": {
            "customer_id": text(),
            "name": { "type": ["string", "null"] },
            "billing": { "enum": ["prepaid", "postpaid", "invalid"] },
            "credit_limit_usd": optional_money(),
            "usd_balance_id": text(),
            "balance_usd": money(),
            "held_usd": money(),
            "available_usd": money(),
            "problem": { "type": "string", "description": "Why the recorded terms cannot be read" },
        },
    });
    json!({
        "Created": {
            "type": "object",
            "properties": {
                "customer_id": text(),
                "ledger_id": text(),
                "identity_id": text(),
                "usd_balance_id": text(),
                "tokens_balance_id": text(),
                "created_anything": { "type": "boolean" },
                "billing": billing,
                "credit_limit_usd": optional_money(),
            },
        },
        "Account": {
            "type": "object",
            "properties": {
                "customer_id": text(),
                "billing": billing,
                "credit_limit_usd": optional_money(),
                "usd_balance_id": text(),
                "tokens_balance_id": text(),
                "balance_usd": money(),
                "held_usd": money(),
                "available_usd": money(),
                "tokens_used": text(),
            },
        },
        "CustomerDetail": {
            "allOf": [
                { "$ref": "#/components/schemas/Account" },
                {
                    "type": "object",
                    "properties": {
                        "outbox": {
                            "description": "Outbox entries of this customer still to post; null when the outbox cannot be read",
                            "oneOf": [outbox, { "type": "null" }],
                        },
                    },
                },
            ],
        },
        "CustomerList": {
            "type": "object",
            "properties": { "customers": { "type": "array", "items": summary } },
        },
        "Funded": {
            "type": "object",
            "properties": {
                "customer_id": text(),
                "reference": text(),
                "amount_usd": money(),
                "transaction_id": text(),
                "already_recorded": { "type": "boolean" },
            },
        },
        "PricesReloaded": {
            "type": "object",
            "properties": {
                "status": { "const": "reloaded" },
                "file": text(),
                "models": count(),
                "previous_models": count(),
                "unchanged": { "type": "boolean" },
            },
        },
    })
}

fn statement_schemas() -> Value {
    let usage_figures = json!({
        "requests": count(),
        "input_tokens": count(),
        "cached_tokens": count(),
        "output_tokens": count(),
        "reasoning_tokens": count(),
        "amount_usd": money(),
    });
    let mut usage_line = usage_figures.clone();
    if let Value::Object(fields) = &mut usage_line {
        fields.insert("model".into(), text());
    }
    let money_line = json!({
        "type": "object",
        "properties": {
            "reference": text(),
            "transaction_id": text(),
            "effective_date": time(),
            "amount_usd": money(),
        },
    });
    let adjustment = json!({
        "type": "object",
        "properties": {
            "reference": text(),
            "transaction_id": text(),
            "effective_date": time(),
            "description": text(),
            "amount_usd": money(),
        },
    });
    let usage_lines =
        json!({ "type": "array", "items": { "$ref": "#/components/schemas/UsageLine" } });
    let usage_total = json!({ "$ref": "#/components/schemas/UsageFigures" });
    json!({
        "UsageFigures": { "type": "object", "properties": usage_figures },
        "UsageLine": { "type": "object", "properties": usage_line },
        "UsageReport": {
            "type": "object",
            "properties": {
                "customer_id": text(),
                "from": time(),
                "to": time(),
                "usage": usage_lines,
                "usage_total": usage_total,
            },
        },
        "Invoice": {
            "type": "object",
            "properties": {
                "customer_id": text(),
                "billing": { "enum": ["prepaid", "postpaid"] },
                "credit_limit_usd": optional_money(),
                "usd_balance_id": text(),
                "from": time(),
                "to": time(),
                "opening_balance_usd": money(),
                "usage": usage_lines,
                "usage_total": usage_total,
                "topups": { "type": "array", "items": money_line },
                "payments": { "type": "array", "items": money_line },
                "adjustments": { "type": "array", "items": adjustment },
                "credits_usd": money(),
                "debits_usd": money(),
                "closing_balance_usd": money(),
                "amount_due_usd": {
                    "description": "Postpaid only: max(0, -closing balance); null for prepaid",
                    "oneOf": [money(), { "type": "null" }],
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Follows every local `$ref` and fails on one that points nowhere.
    fn check_refs(document: &Value, value: &Value) {
        match value {
            Value::Object(fields) => {
                if let Some(Value::String(target)) = fields.get("$ref") {
                    let pointer = target.strip_prefix('#').expect("local reference");
                    assert!(
                        document.pointer(pointer).is_some(),
                        "dangling $ref {target}"
                    );
                }
                fields
                    .values()
                    .for_each(|inner| check_refs(document, inner));
            }
            Value::Array(items) => items.iter().for_each(|inner| check_refs(document, inner)),
            _ => {}
        }
    }

    #[test]
    fn references_resolve() {
        let document = document();
        check_refs(&document, &document);
        assert_eq!(document["openapi"], "3.1.0");
    }

    #[test]
    fn every_route_is_described() {
        let document = document();
        for (method, path) in crate::admin::routes() {
            let operation = &document["paths"][path][method.as_str().to_lowercase()];
            assert!(
                operation.is_object(),
                "{method} {path} is not in the OpenAPI document"
            );
            assert!(
                operation["responses"].is_object(),
                "{method} {path} has no responses"
            );
        }
    }
}
