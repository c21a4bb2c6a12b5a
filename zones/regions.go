package zones

import (
	"math"

	"github.com/meshdns/meshdns/registry"
)

// site is a built-in region: its code and the coordinates of the airport
// it is named after, in degrees.
type site struct {
	code     string
	lat, lon float64
}

// builtinSites are the usual three-letter region codes, sorted by code.
// Coordinates are those of the airport each code names; registry
// regions/<code> entries add codes or override these.
var builtinSites = [...]site{
	{"ams", 52.3086, 4.7639},    // Amsterdam Schiphol
	{"arn", 59.6519, 17.9186},   // Stockholm Arlanda
	{"atl", 33.6407, -84.4277},  // Atlanta Hartsfield-Jackson
	{"bog", 4.7016, -74.1469},   // Bogotá El Dorado
	{"bom", 19.0896, 72.8656},   // Mumbai Chhatrapati Shivaji
	{"bos", 42.3656, -71.0096},  // Boston Logan
	{"cdg", 49.0097, 2.5479},    // Paris Charles de Gaulle
	{"den", 39.8561, -104.6737}, // Denver
	{"dfw", 32.8998, -97.0403},  // Dallas/Fort Worth
	{"ewr", 40.6895, -74.1745},  // Newark (Secaucus, NJ)
	{"eze", -34.8222, -58.5358}, // Buenos Aires Ezeiza
	{"fra", 50.0379, 8.5622},    // Frankfurt
	{"gdl", 20.5218, -103.3112}, // Guadalajara
	{"gig", -22.8100, -43.2506}, // Rio de Janeiro Galeão
	{"gru", -23.4356, -46.4731}, // São Paulo Guarulhos
	{"hkg", 22.3080, 113.9185},  // Hong Kong
	{"iad", 38.9531, -77.4565},  // Washington Dulles (Ashburn, VA)
	{"jnb", -26.1367, 28.2411},  // Johannesburg O. R. Tambo
	{"lax", 33.9416, -118.4085}, // Los Angeles
	{"lhr", 51.4700, -0.4543},   // London Heathrow
	{"mad", 40.4983, -3.5676},   // Madrid Barajas
	{"mia", 25.7959, -80.2870},  // Miami
	{"nrt", 35.7720, 140.3929},  // Tokyo Narita
	{"ord", 41.9742, -87.9073},  // Chicago O'Hare
	{"otp", 44.5711, 26.0850},   // Bucharest Otopeni
	{"phx", 33.4342, -112.0116}, // Phoenix Sky Harbor
	{"qro", 20.6173, -100.1857}, // Querétaro
	{"scl", -33.3930, -70.7858}, // Santiago de Chile
	{"sea", 47.4502, -122.3088}, // Seattle-Tacoma
	{"sin", 1.3644, 103.9915},   // Singapore Changi
	{"sjc", 37.3639, -121.9289}, // San José, CA
	{"syd", -33.9399, 151.1753}, // Sydney Kingsford Smith
	{"waw", 52.1657, 20.9671},   // Warsaw Chopin
	{"yul", 45.4706, -73.7408},  // Montréal Trudeau
	{"yyz", 43.6777, -79.6248},  // Toronto Pearson
}

const numBuiltin = len(builtinSites)

// codeSpace is the number of possible three-letter codes.
const codeSpace = 26 * 26 * 26

var (
	// builtinSlot maps a packed code to 1 + its index in builtinSites, or 0:
	// one array load instead of a map lookup per machine per query.
	builtinSlot [codeSpace]uint8
	// builtinKm holds the distance between every two built-in sites, so
	// ordering an answer costs no trigonometry unless the registry moved a
	// region. Computed once at init; read-only afterwards.
	builtinKm [numBuiltin][numBuiltin]float32
)

func init() {
	for i, s := range builtinSites {
		builtinSlot[packCode(s.code)] = uint8(i + 1)
	}
	for i, a := range builtinSites {
		for j, b := range builtinSites {
			builtinKm[i][j] = float32(haversineKm(a.lat, a.lon, b.lat, b.lon))
		}
	}
}

// packCode maps a three-letter code a–z to 0..codeSpace-1, or -1.
func packCode(s string) int {
	if !isRegionCode(s) {
		return -1
	}
	return int(s[0]-'a')*676 + int(s[1]-'a')*26 + int(s[2]-'a')
}

// builtinIndex is the index of code in builtinSites, or -1.
func builtinIndex(code string) int {
	p := packCode(code)
	if p < 0 {
		return -1
	}
	return int(builtinSlot[p]) - 1
}

// earthRadiusKm is the mean Earth radius used for great-circle distances.
const earthRadiusKm = 6371

// haversineKm is the great-circle distance between two points in degrees.
// It is symmetric to the last bit, so a distance computed in either
// direction ties with itself.
func haversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dLat := (lat2 - lat1) * rad / 2
	dLon := (lon2 - lon1) * rad / 2
	sLat, sLon := math.Sin(dLat), math.Sin(dLon)
	h := sLat*sLat + math.Cos(lat1*rad)*math.Cos(lat2*rad)*sLon*sLon
	if h > 1 {
		h = 1 // rounding near antipodes
	}
	return 2 * earthRadiusKm * math.Asin(math.Sqrt(h))
}

// Regions is the region table one snapshot answers with: the built-in
// sites merged with the registry's regions/ entries, which add codes or
// override built-in coordinates. It is a small value that only refers to
// the snapshot's (immutable) map, so making one per query costs nothing.
type Regions struct {
	reg map[string]*registry.Region
}

// NewRegions makes the table for a snapshot's regions (snap.Regions()).
// reg may be nil; it must not be modified afterwards.
func NewRegions(reg map[string]*registry.Region) Regions { return Regions{reg: reg} }

// Coord returns the latitude and longitude of a region code in degrees.
// ok is false for a code neither built in nor in the registry.
func (r Regions) Coord(code string) (lat, lon float64, ok bool) {
	if g := r.reg[code]; g != nil {
		return g.Lat, g.Lon, true
	}
	if i := builtinIndex(code); i >= 0 {
		return builtinSites[i].lat, builtinSites[i].lon, true
	}
	return 0, 0, false
}

// DistanceKm is the great-circle distance between two regions, from the
// precomputed table when the registry overrides neither. ok is false when
// either region is unknown.
func (r Regions) DistanceKm(a, b string) (km float32, ok bool) {
	if r.reg[a] == nil && r.reg[b] == nil {
		i, j := builtinIndex(a), builtinIndex(b)
		if i >= 0 && j >= 0 {
			return builtinKm[i][j], true
		}
	}
	lat1, lon1, ok1 := r.Coord(a)
	lat2, lon2, ok2 := r.Coord(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	return float32(haversineKm(lat1, lon1, lat2, lon2)), true
}

// BuiltinCodes lists the built-in region codes, sorted.
func BuiltinCodes() []string {
	out := make([]string, numBuiltin)
	for i, s := range builtinSites {
		out[i] = s.code
	}
	return out
}
