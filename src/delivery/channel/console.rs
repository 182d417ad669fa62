//! The console channel: the message's text on standard error, in one piece (the default
//! without a config file, and the demo's).

use super::{ChannelKind, Deliver, Forms, Sending, Thread, permanent};
use crate::render::alert::{AlertView, Templates};
use crate::render::summary::{self, Report};
use crate::table::Table;
use std::path::Path;
use std::sync::Arc;

pub struct Console;

/// The console channel has no settings of its own (`kind = "console"`).
#[derive(Clone, Debug, PartialEq)]
pub struct ConsoleSettings;

/// Reads `kind = "console"`.
pub fn read(_: &mut Table<'_>) -> Option<Arc<dyn ChannelKind>> {
    Some(Arc::new(ConsoleSettings))
}

impl ChannelKind for ConsoleSettings {
    fn name(&self) -> &'static str {
        "console"
    }

    fn deliver(&self, _: Option<&Path>) -> anyhow::Result<Box<dyn Deliver>> {
        Ok(Box::new(Console))
    }

    fn check(&self, t: &Templates, v: &AlertView) -> anyhow::Result<()> {
        t.console(v).map(drop)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The text on standard error, in one write.
fn print(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

impl Deliver for Console {
    fn alert<'a>(&'a self, forms: &'a Forms<'a>, v: &'a AlertView, _: &'a Thread) -> Sending<'a> {
        Box::pin(async move {
            print(&forms.templates.console(v).map_err(permanent)?);
            Ok(())
        })
    }

    fn summary<'a>(&'a self, forms: &'a Forms<'a>, r: &'a Report, _: &'a Thread) -> Sending<'a> {
        Box::pin(async move {
            print(
                &summary::render(r, "summary.txt.j2", forms.template_dir, None)
                    .map_err(permanent)?,
            );
            Ok(())
        })
    }
}
