//! Statements that are not hot paths (migrations, services, housekeeping) with loosely typed
//! parameters: each value is fitted to the parameter type the server inferred, so Python can
//! pass an `int` for a `bigint` or `integer` column alike.

use bytes::BytesMut;
use postgres_types::{IsNull, Kind, ToSql, Type};
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error + Sync + Send>;

#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Uuid(Uuid),
    /// Serialized JSON for json/jsonb parameters.
    Json(Vec<u8>),
    Array(Vec<Value>),
}

fn mismatch(value: &Value, ty: &Type) -> BoxError {
    format!("cannot pass {value:?} as a parameter of type {ty}").into()
}

impl Value {
    fn as_uuid(&self) -> Result<Uuid, BoxError> {
        match self {
            Value::Uuid(u) => Ok(*u),
            Value::Text(t) => Ok(Uuid::parse_str(t)?),
            other => Err(mismatch(other, &Type::UUID)),
        }
    }
}

fn array_to_sql(
    items: &[Value],
    member: &Type,
    ty: &Type,
    out: &mut BytesMut,
) -> Result<IsNull, BoxError> {
    macro_rules! typed {
        ($t:ty, $f:expr) => {{
            let converted: Result<Vec<Option<$t>>, BoxError> = items
                .iter()
                .map(|v| {
                    if matches!(v, Value::Null) {
                        Ok(None)
                    } else {
                        $f(v).map(Some)
                    }
                })
                .collect();
            converted?.to_sql(ty, out)
        }};
    }
    match *member {
        Type::UUID => typed!(Uuid, |v: &Value| v.as_uuid()),
        Type::TEXT | Type::VARCHAR | Type::NAME => typed!(String, |v: &Value| match v {
            Value::Text(t) => Ok(t.clone()),
            other => Err(mismatch(other, member)),
        }),
        Type::INT8 => typed!(i64, |v: &Value| match v {
            Value::Int(i) => Ok(*i),
            other => Err(mismatch(other, member)),
        }),
        Type::INT4 => typed!(i32, |v: &Value| match v {
            Value::Int(i) => Ok(i32::try_from(*i)?),
            other => Err(mismatch(other, member)),
        }),
        Type::JSONB | Type::JSON => typed!(crate::db::pgtypes::JsonText, |v: &Value| match v {
            Value::Json(j) => Ok(crate::db::pgtypes::JsonText(j.clone())),
            other => Err(mismatch(other, member)),
        }),
        _ => Err(format!("array parameters of type {ty} are not supported").into()),
    }
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Bool(b), &Type::BOOL) => b.to_sql(ty, out),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Float(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Float(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (
                Value::Text(t),
                &Type::TEXT | &Type::VARCHAR | &Type::NAME | &Type::BPCHAR | &Type::UNKNOWN,
            ) => t.as_str().to_sql(&Type::TEXT, out),
            (Value::Text(_) | Value::Uuid(_), &Type::UUID) => self.as_uuid()?.to_sql(ty, out),
            (Value::Uuid(u), &Type::TEXT | &Type::VARCHAR) => {
                u.to_string().as_str().to_sql(ty, out)
            }
            (Value::Json(j), &Type::JSONB | &Type::JSON) => {
                crate::db::pgtypes::JsonText(j.clone()).to_sql(ty, out)
            }
            (Value::Array(items), _) => match ty.kind() {
                Kind::Array(member) => array_to_sql(items, member, ty, out),
                _ => Err(mismatch(self, ty)),
            },
            _ => Err(mismatch(self, ty)),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn to_sql_checked(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.to_sql(ty, out)
    }
}

pub fn as_params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}
