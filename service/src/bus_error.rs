//! The errors berthd replies with: `org.berth.Berth1.Error.<Name>` for Berth's own, and the
//! bus's standard names where D-Bus defines one (invalid arguments, interactive auth).

use zbus::message::{Header, Message};
use zbus::names::ErrorName;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusError {
    name: String,
    message: String,
}

impl BusError {
    /// An error in Berth's namespace; `short` is e.g. "Busy".
    pub fn berth(short: &str, message: impl Into<String>) -> Self {
        BusError {
            name: format!("{}.{short}", berth_dbus::ERROR_PREFIX),
            message: message.into(),
        }
    }
    pub fn busy(message: impl Into<String>) -> Self {
        Self::berth("Busy", message)
    }
    pub fn not_authorized(message: impl Into<String>) -> Self {
        Self::berth("NotAuthorized", message)
    }
    pub fn wrong_state(message: impl Into<String>) -> Self {
        Self::berth("WrongState", message)
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::berth("Failed", message)
    }
    pub fn invalid_args(message: impl Into<String>) -> Self {
        BusError {
            name: "org.freedesktop.DBus.Error.InvalidArgs".into(),
            message: message.into(),
        }
    }
    /// A per-user limit was reached (the bus's standard name for it).
    pub fn limits_exceeded(message: impl Into<String>) -> Self {
        BusError {
            name: "org.freedesktop.DBus.Error.LimitsExceeded".into(),
            message: message.into(),
        }
    }
    /// polkit would ask for a password, but the caller did not allow interaction.
    pub fn interactive_auth_required(message: impl Into<String>) -> Self {
        BusError {
            name: "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired".into(),
            message: message.into(),
        }
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<berth_engine::Error> for BusError {
    fn from(e: berth_engine::Error) -> Self {
        // `{:#}`-style chain: thiserror's Display already carries the context. It can quote
        // a layer's paths or the tar reader's words: made inert like all outside text.
        Self::berth(e.name(), berth_engine::text::outside_long(&e.to_string()))
    }
}

impl From<zbus::Error> for BusError {
    fn from(e: zbus::Error) -> Self {
        Self::failed(e.to_string())
    }
}

impl std::fmt::Display for BusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for BusError {}

impl zbus::DBusError for BusError {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<Message> {
        Message::error(call, self.name.as_str())?.build(&(self.message.as_str(),))
    }
    fn name(&self) -> ErrorName<'_> {
        ErrorName::try_from(self.name.as_str()).expect("error names are built from constants")
    }
    fn description(&self) -> Option<&str> {
        Some(&self.message)
    }
}
