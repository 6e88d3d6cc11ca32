using DuckDB.NET.Data;

namespace Harness.Tests.Service;

/// <summary>Reads Parquet files with DuckDB (an independent reader).</summary>
public static class ParquetQuery
{
    public static List<object?[]> Rows(string sql)
    {
        using var con = new DuckDBConnection("Data Source=:memory:");
        con.Open();
        using var cmd = con.CreateCommand();
        cmd.CommandText = sql;
        using var r = cmd.ExecuteReader();
        var rows = new List<object?[]>();
        while (r.Read())
        {
            var row = new object?[r.FieldCount];
            for (int i = 0; i < r.FieldCount; i++) row[i] = r.IsDBNull(i) ? null : r.GetValue(i);
            rows.Add(row);
        }
        return rows;
    }

    public static string Q(string path) => "'" + path.Replace("'", "''") + "'";
}
