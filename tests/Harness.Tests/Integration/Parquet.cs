using DuckDB.NET.Data;

namespace Harness.Tests.Integration;

/// <summary>Reads Parquet files with DuckDB: an independent reader, not the Parquet.Net library the host writes with.</summary>
public static class DuckDb
{
    public static string Quote(string path) => "'" + path.Replace("'", "''") + "'";

    /// <summary>Rows of a query as column name → value (null for SQL NULL).</summary>
    public static List<Dictionary<string, object?>> Query(string sql)
    {
        using var connection = new DuckDBConnection("Data Source=:memory:");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        using var reader = command.ExecuteReader();
        var rows = new List<Dictionary<string, object?>>();
        while (reader.Read())
        {
            var row = new Dictionary<string, object?>(StringComparer.Ordinal);
            for (int i = 0; i < reader.FieldCount; i++)
                row[reader.GetName(i)] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            rows.Add(row);
        }
        return rows;
    }

    /// <summary>All rows of a Parquet file, in file order.</summary>
    public static List<Dictionary<string, object?>> ReadParquet(string path, string orderBy = "") =>
        Query($"SELECT * FROM read_parquet({Quote(path)}){(orderBy.Length > 0 ? " ORDER BY " + orderBy : "")}");

    /// <summary>Column name → (Parquet physical type, logical/converted type, repetition) from the file's own schema.</summary>
    public static Dictionary<string, (string Type, string? Logical, string Repetition)> Schema(string path)
    {
        var result = new Dictionary<string, (string, string?, string)>(StringComparer.Ordinal);
        foreach (var r in Query($"SELECT name, type, converted_type, repetition_type FROM parquet_schema({Quote(path)}) WHERE num_children IS NULL OR num_children = 0"))
            result[(string)r["name"]!] = ((string)r["type"]!, r["converted_type"] as string, (string)r["repetition_type"]!);
        return result;
    }

    /// <summary>Column names in file order as DuckDB sees them, with DuckDB's SQL type.</summary>
    public static List<(string Name, string Type)> Describe(string path) =>
        Query($"DESCRIBE SELECT * FROM read_parquet({Quote(path)})")
            .Select(r => ((string)r["column_name"]!, (string)r["column_type"]!)).ToList();

    public static double? Double(object? v) => v is null ? null : Convert.ToDouble(v, System.Globalization.CultureInfo.InvariantCulture);
    public static long Long(object? v) => Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture);
}
