//! Aligned columns, as `kubectl get` prints them: readable, and still splittable with `awk`
//! because only the last column may be empty (callers print `-` for an unknown value).

/// A table with a header row. Cells are left-aligned and columns separated by three spaces.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; a short row is padded with `-`, extra cells are kept.
    pub fn push_row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as text, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        let cell = |row: &[String], column: usize| -> String {
            row.get(column).cloned().unwrap_or_else(|| "-".to_string())
        };
        let lines: Vec<Vec<String>> = std::iter::once(&self.header)
            .chain(&self.rows)
            .map(|row| (0..columns).map(|column| cell(row, column)).collect())
            .collect();
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                lines
                    .iter()
                    .map(|line| line[column].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        for line in &lines {
            let mut rendered = String::new();
            for (column, value) in line.iter().enumerate() {
                if column + 1 == columns {
                    rendered.push_str(value);
                } else {
                    let padding = widths[column] - value.chars().count();
                    rendered.push_str(value);
                    rendered.push_str(&" ".repeat(padding + 3));
                }
            }
            text.push_str(rendered.trim_end());
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_to_the_widest_cell() {
        let mut table = Table::new(["ID", "ROLE", "IS LEADER"]);
        table.push_row(vec!["1".into(), "voter".into(), "true".into()]);
        table.push_row(vec!["12".into(), "learner".into(), "false".into()]);
        assert_eq!(
            table.render(),
            "ID   ROLE      IS LEADER\n\
             1    voter     true\n\
             12   learner   false\n"
        );
    }

    #[test]
    fn short_rows_are_padded_with_a_dash() {
        let mut table = Table::new(["A", "B"]);
        table.push_row(vec!["x".into()]);
        assert_eq!(table.render(), "A   B\nx   -\n");
    }
}
