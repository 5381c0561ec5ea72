//! JUnit XML reports, as test runners write them: a `<testsuites>` of `<testsuite>`s (which may
//! nest) of `<testcase>`s, or one `<testsuite>` alone. Parsed with quick-xml's serde support.

use serde::Deserialize;

/// One test case's result in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResult {
    /// The `<testsuite name>` it belongs to.
    pub suite: String,
    /// `classname`, if given.
    pub class_name: Option<String>,
    /// `name`.
    pub name: String,
    /// `file`, if given.
    pub file: Option<String>,
    /// `passed`, `failed` (a `<failure>`), `error` (an `<error>`) or `skipped`.
    pub status: &'static str,
    /// `time`, in milliseconds.
    pub duration_ms: Option<i32>,
    /// The failure's or error's `message`.
    pub message: Option<String>,
    /// The failure's or error's text (usually the stack trace).
    pub stack_trace: Option<String>,
}

impl TestResult {
    /// Whether it failed or errored.
    pub fn failed(&self) -> bool {
        matches!(self.status, "failed" | "error")
    }
}

#[derive(Deserialize)]
struct Suites {
    #[serde(rename = "testsuite", default)]
    suites: Vec<Suite>,
}

#[derive(Deserialize)]
struct Suite {
    #[serde(rename = "@name", default)]
    name: Option<String>,
    #[serde(rename = "testcase", default)]
    cases: Vec<Case>,
    #[serde(rename = "testsuite", default)]
    nested: Vec<Suite>,
}

#[derive(Deserialize)]
struct Case {
    #[serde(rename = "@name")]
    name: String,
    #[serde(rename = "@classname", default)]
    classname: Option<String>,
    #[serde(rename = "@time", default)]
    time: Option<String>,
    #[serde(rename = "@file", default)]
    file: Option<String>,
    #[serde(default)]
    failure: Option<Problem>,
    #[serde(default)]
    error: Option<Problem>,
    #[serde(default)]
    skipped: Option<Skipped>,
}

#[derive(Deserialize)]
struct Problem {
    #[serde(rename = "@message", default)]
    message: Option<String>,
    #[serde(rename = "$text", default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct Skipped {}

/// The longest report accepted, in bytes.
pub const MAX_REPORT_BYTES: usize = 64 << 20;

/// The test results of `xml`, or why it is not a report (malformed XML, a root other than
/// `<testsuites>` or `<testsuite>`, a test case without a name, a time that is not a
/// non-negative number of seconds).
pub fn parse(xml: &str) -> Result<Vec<TestResult>, String> {
    let root = root_element(xml)?;
    let suites = match root.as_str() {
        "testsuites" => {
            quick_xml::de::from_str::<Suites>(xml)
                .map_err(|e| format!("not a JUnit report: {e}"))?
                .suites
        }
        "testsuite" => {
            vec![
                quick_xml::de::from_str::<Suite>(xml)
                    .map_err(|e| format!("not a JUnit report: {e}"))?,
            ]
        }
        other => {
            return Err(format!(
                "the root element is <{other}>, not <testsuites> or <testsuite>"
            ));
        }
    };
    let mut out = Vec::new();
    for suite in &suites {
        flatten(suite, &mut out)?;
    }
    Ok(out)
}

/// The name of the document's first element.
fn root_element(xml: &str) -> Result<String, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                return Ok(String::from_utf8_lossy(e.name().as_ref()).into_owned());
            }
            Ok(Event::Eof) => return Err("an empty document".to_owned()),
            Ok(_) => {}
            Err(e) => return Err(format!("malformed XML: {e}")),
        }
    }
}

fn flatten(suite: &Suite, out: &mut Vec<TestResult>) -> Result<(), String> {
    let name = suite.name.clone().unwrap_or_default();
    for case in &suite.cases {
        if case.name.trim().is_empty() {
            return Err(format!("a test case without a name in suite {name:?}"));
        }
        let (status, problem) = match (&case.failure, &case.error, &case.skipped) {
            (Some(p), _, _) => ("failed", Some(p)),
            (None, Some(p), _) => ("error", Some(p)),
            (None, None, Some(_)) => ("skipped", None),
            (None, None, None) => ("passed", None),
        };
        out.push(TestResult {
            suite: name.clone(),
            class_name: case.classname.clone().filter(|c| !c.is_empty()),
            name: case.name.clone(),
            file: case.file.clone(),
            status,
            duration_ms: case.time.as_deref().map(milliseconds).transpose()?,
            message: problem.and_then(|p| p.message.clone()),
            stack_trace: problem
                .and_then(|p| p.text.clone())
                .map(|t| t.trim().to_owned()),
        });
    }
    for nested in &suite.nested {
        flatten(nested, out)?;
    }
    Ok(())
}

/// `time` (seconds, as text) in whole milliseconds.
fn milliseconds(time: &str) -> Result<i32, String> {
    let seconds: f64 = time
        .trim()
        .parse()
        .map_err(|_| format!("the time {time:?} is not a number of seconds"))?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!(
            "the time {time:?} is not a non-negative number of seconds"
        ));
    }
    // Saturates at i32::MAX ms (24 days): longer is a broken clock, not a test.
    Ok((seconds * 1000.0).round().min(f64::from(i32::MAX)) as i32)
}

/// The failure message with its variable parts (numbers, hex addresses) replaced, so that the
/// same failure in different runs clusters together.
pub fn signature(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c == '0' && chars.peek() == Some(&'x') {
            chars.next();
            while chars.peek().is_some_and(char::is_ascii_hexdigit) {
                chars.next();
            }
            out.push_str("<hex>");
        } else if c.is_ascii_digit() {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push_str("<n>");
        } else {
            out.push(c);
        }
    }
    out.chars().take(200).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_suites_cases_and_outcomes() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="unit" tests="3">
    <testcase classname="Math" name="adds" time="0.012"/>
    <testcase classname="Math" name="divides" time="1.5">
      <failure message="expected 2 got 3">at Math.divides(Math.java:42)</failure>
    </testcase>
    <testcase name="later"><skipped/></testcase>
    <testsuite name="nested"><testcase name="inner"><error message="boom"/></testcase></testsuite>
  </testsuite>
</testsuites>"#;
        let r = parse(xml).unwrap();
        let got: Vec<(&str, &str, &str, Option<i32>)> = r
            .iter()
            .map(|t| (t.suite.as_str(), t.name.as_str(), t.status, t.duration_ms))
            .collect();
        assert_eq!(
            got,
            [
                ("unit", "adds", "passed", Some(12)),
                ("unit", "divides", "failed", Some(1500)),
                ("unit", "later", "skipped", None),
                ("nested", "inner", "error", None),
            ]
        );
        assert_eq!(r[1].message.as_deref(), Some("expected 2 got 3"));
        assert_eq!(
            r[1].stack_trace.as_deref(),
            Some("at Math.divides(Math.java:42)")
        );
        assert_eq!(r[2].class_name, None);
        let single = parse(r#"<testsuite name="s"><testcase name="a"/></testsuite>"#).unwrap();
        assert_eq!(single.len(), 1);
    }

    #[test]
    fn refuses_what_is_not_a_report() {
        for bad in [
            "",
            "not xml at all",
            "<testsuites><testsuite name=\"a\"><testcase name=\"x\"></testsuite>",
            "<html><body/></html>",
            r#"<testsuite name="s"><testcase name="a" time="soon"/></testsuite>"#,
            r#"<testsuite name="s"><testcase name="a" time="-1"/></testsuite>"#,
            r#"<testsuite name="s"><testcase name=" "/></testsuite>"#,
            r#"<testsuite name="s"><testcase time="1"/></testsuite>"#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn signatures_drop_the_variable_parts() {
        assert_eq!(
            signature(" expected 2 got 31 at 0x7ffd1234 "),
            "expected <n> got <n> at <hex>"
        );
        assert_eq!(signature(&"x".repeat(500)).len(), 200);
    }
}
