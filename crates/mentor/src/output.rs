//! What a command prints when it is done: human text on stdout, or with `--json` exactly one
//! JSON line on stdout (so `mentor … --json | jq` always works).

/// A finished command's result: what a person reads and what a script parses.
pub struct Summary {
    pub human: String,
    pub json: serde_json::Value,
}

pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn finish(&self, s: &Summary) {
        if self.json {
            let mut v = s.json.clone();
            if let Some(obj) = v.as_object_mut() {
                obj.entry("ok").or_insert(serde_json::Value::Bool(true));
            }
            println!("{v}");
        } else if !s.human.is_empty() {
            println!("{}", s.human.trim_end());
        }
    }
}
